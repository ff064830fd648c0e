"""How many tasks of each agent type one worker process runs at once (``ORCH_CONCURRENCY``).

Agents mostly wait on models and services, so a process runs many at once: the default is for
every type (each its own slots, so a slow type cannot take a fast one's), and a type that needs
another number names it: ``100,summarize=4,llm=400``.
"""

from __future__ import annotations

MAX_CONCURRENCY = 10_000


def _number(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_CONCURRENCY:
        raise ValueError(f"ORCH_CONCURRENCY: {what} must be a whole number from 1 to"
                         f" {MAX_CONCURRENCY}, not {text!r} (e.g. 100,summarize=4)")
    return value


def parse_concurrency(spec: str, agents: list[str], known: list[str]) -> dict[str, int]:
    """Each of ``agents``' concurrency from ``spec`` (a default, then ``NAME=N`` overrides);
    a ``ValueError`` naming the setting for anything unreadable or an unknown agent."""
    default, *overrides = [part.strip() for part in spec.split(",")]
    out = dict.fromkeys(agents, _number(default, "the default"))
    for override in overrides:
        name, sep, value = override.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"ORCH_CONCURRENCY: {override!r} is not NAME=N"
                             " (e.g. 100,summarize=4)")
        if name not in known:
            raise ValueError(f"ORCH_CONCURRENCY names unknown agent {name!r}; known agents:"
                             f" {known}")
        number = _number(value.strip(), name)
        if name in out:
            out[name] = number
    return out
