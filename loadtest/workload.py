"""What each request submits: the agent mix and the task inputs (with padding of a given size).

The mix is deterministic (smooth weighted round-robin): with ``echo=0.8,summarize=0.2`` every
window of five requests holds four echo and one summarize task, so a short run has the exact
mix it asked for and two runs submit the same sequence.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

_WORDS = ("agent", "queue", "worker", "latency", "throughput", "broker", "message", "retry",
          "budget", "objective", "trace", "metric", "database", "request", "task", "signal",
          "capacity", "backlog", "deadline", "replica")


def parse_mix(spec: str) -> dict[str, float]:
    """``"echo=0.8,summarize=0.2"`` (or ``"echo"``) -> normalised weights."""
    weights: dict[str, float] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        name, _, raw = part.partition("=")
        try:
            weight = float(raw) if raw else 1.0
        except ValueError:
            raise ValueError(f"mix entry {part!r}: the weight must be a number") from None
        if weight < 0 or not name.strip():
            raise ValueError(f"mix entry {part!r}: expected AGENT=WEIGHT with WEIGHT >= 0")
        weights[name.strip()] = weights.get(name.strip(), 0.0) + weight
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"mix {spec!r}: give at least one agent with a weight above 0")
    return {name: w / total for name, w in weights.items() if w > 0}


def generated_text(size: int, seed: int = 7) -> str:
    """About ``size`` characters of sentences (input for ``summarize``)."""
    rng = random.Random(seed)
    sentences: list[str] = []
    length = 0
    while length < max(size, 1):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 14))]
        sentence = " ".join(words).capitalize() + "."
        sentences.append(sentence)
        length += len(sentence) + 1
    return " ".join(sentences)[:max(size, 1)]


@dataclass
class Workload:
    """The agent mix, the inputs and the task options of every submitted task."""

    mix: dict[str, float]
    payload_bytes: int = 0
    inputs: dict[str, Any] = field(default_factory=dict)
    """Per agent: the input to send (a JSON object gets the padding as ``"pad"``)."""
    max_attempts: int | None = None
    timeout_s: float | None = None
    _credit: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _text: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self._credit = dict.fromkeys(self.mix, 0.0)
        self._text = generated_text(max(self.payload_bytes, 400))

    def next_agent(self) -> str:
        """The next agent in the mix (smooth weighted round-robin)."""
        for name, weight in self.mix.items():
            self._credit[name] += weight
        chosen = max(self._credit, key=lambda name: self._credit[name])
        self._credit[chosen] -= 1.0
        return chosen

    def input_for(self, agent: str, seq: int) -> Any:
        """The task input: the configured one, else a default per agent; padded."""
        if agent in self.inputs:
            base = self.inputs[agent]
            if not isinstance(base, dict):
                return base
            payload: dict[str, Any] = dict(base)
        elif agent == "summarize":
            return {"text": self._text, "sentences": 2}
        elif agent == "sleep":
            payload = {"seconds": 0.1}
        elif agent == "fail":
            payload = {"always": True}
        else:
            payload = {"n": seq}
        if self.payload_bytes > 0:
            payload["pad"] = "x" * self.payload_bytes
        return payload

    def body(self, seq: int) -> tuple[str, bytes]:
        """``(agent, JSON body)`` of request number ``seq``."""
        agent = self.next_agent()
        body: dict[str, Any] = {"agent": agent, "input": self.input_for(agent, seq)}
        if self.max_attempts is not None:
            body["max_attempts"] = self.max_attempts
        if self.timeout_s is not None:
            body["timeout_s"] = self.timeout_s
        return agent, json.dumps(body, separators=(",", ":")).encode()
