"""Agents: the worker runtime and the built-in agents.

An agent is an async function ``fn(input, ctx) -> result`` registered by name with ``@agent``;
consuming, timeouts, acks, retries, dead letters and heartbeats belong to the runtime.

May import: ``service``.
"""

from agents.context import TaskContext
from agents.registry import AgentSpec, agent, get_agent, known_agents, load_agent_modules
from agents.retry import RetryPolicy
from service.errors import AgentError, NonRetryableError

__all__ = [
    "AgentError",
    "AgentSpec",
    "NonRetryableError",
    "RetryPolicy",
    "TaskContext",
    "agent",
    "get_agent",
    "known_agents",
    "load_agent_modules",
]
