"""The agent registry: agent types by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from agents.context import TaskContext
from agents.retry import RetryPolicy

AgentFn = Callable[[Any, TaskContext], Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class AgentSpec:
    """A registered agent type."""

    name: str
    fn: AgentFn
    description: str
    retry: RetryPolicy | None = None
    timeout_s: float | None = None


_REGISTRY: dict[str, AgentSpec] = {}


def agent(name: str, *, retry: RetryPolicy | None = None,
          timeout_s: float | None = None) -> Callable[[AgentFn], AgentFn]:
    """Register ``fn`` as the agent type ``name``."""
    def register(fn: AgentFn) -> AgentFn:
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = AgentSpec(name, fn, doc[0] if doc else "", retry, timeout_s)
        return fn
    return register


def get_agent(name: str) -> AgentSpec | None:
    return _REGISTRY.get(name)


def known_agents() -> list[str]:
    return sorted(_REGISTRY)


def load_agent_modules(modules: Iterable[str]) -> list[str]:
    """Import the modules that register agents; return the known agent names."""
    for module in modules:
        importlib.import_module(module)
    return known_agents()
