"""The agent registry: agent types by name."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from agents.context import TaskContext
from agents.retry import RetryPolicy

AgentFn = Callable[[Any, TaskContext], Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class FlowLimits:
    """How much of an agent type may run at once, across every worker (``None``: no limit).

    ``rate`` and ``tokens`` are written ``N/s``, ``N/min`` or ``N/h``: tasks started, and
    model tokens spent (what ``ctx.record_model_call`` reports). ``concurrency`` bounds the
    tasks running at once; ``max_concurrency_per_key`` those of one ``concurrency_key``. A
    deployment may change them (``ORCH_AGENT_LIMITS``)."""

    rate: str | None = None
    tokens: str | None = None
    concurrency: int | None = None
    max_concurrency_per_key: int | None = None


@dataclass(frozen=True)
class AgentSpec:
    """A registered agent type."""

    name: str
    fn: AgentFn
    description: str
    retry: RetryPolicy | None = None
    timeout_s: float | None = None
    limits: FlowLimits = FlowLimits()


_REGISTRY: dict[str, AgentSpec] = {}
AGENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""What an agent type may be called: it names queues, routing keys and metric labels (a dot
would read as a priority band's suffix)."""


def agent(name: str, *, retry: RetryPolicy | None = None, timeout_s: float | None = None,
          rate: str | None = None, tokens: str | None = None, concurrency: int | None = None,
          max_concurrency_per_key: int | None = None) -> Callable[[AgentFn], AgentFn]:
    """Register ``fn`` as the agent type ``name`` (its flow limits: ``FlowLimits``)."""
    if not AGENT_NAME.fullmatch(name):
        raise ValueError(f"agent name {name!r}: use 1-63 lowercase letters, digits, '_' or '-'"
                         " (starting with a letter or digit)")
    def register(fn: AgentFn) -> AgentFn:
        _REGISTRY[name] = AgentSpec(name, fn, plain_summary(fn.__doc__), retry, timeout_s,
                                    FlowLimits(rate, tokens, concurrency,
                                               max_concurrency_per_key))
        return fn
    return register


_ROLE = re.compile(r":[a-z:]+:`([^`]*)`")
_LITERAL = re.compile(r"``([^`]*)``|`([^`]*)`")


def plain_summary(doc: str | None) -> str:
    """The docstring's first paragraph as one line of plain text (no reStructuredText roles
    or literals): what ``orchestrator agents`` and ``/v1/agents`` show."""
    paragraph = inspect.cleandoc(doc or "").split("\n\n", 1)[0]
    text = _LITERAL.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2),
                        _ROLE.sub(r"\1", paragraph))
    return " ".join(text.split())


def get_agent(name: str) -> AgentSpec | None:
    return _REGISTRY.get(name)


def known_agents() -> list[str]:
    return sorted(_REGISTRY)


def load_agent_modules(modules: Iterable[str]) -> list[str]:
    """Import the modules that register agents; return the known agent names."""
    for module in modules:
        importlib.import_module(module)
    return known_agents()
