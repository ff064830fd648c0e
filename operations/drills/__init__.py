"""``orchestrator drill``: the drill stack (``harness``), one drill per incident scenario
(``drills``), and the runner with its report (``runner``); ``proxy`` and ``fake_llm`` are the
stand-ins it uses (a link it can slow down or cut, the model API it cannot reach from here)."""
