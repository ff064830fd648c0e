"""The agent SDK: what an agent author imports (the ``@agent`` decorator and its flow limits,
``TaskContext``, the errors, the retry policy) and the built-in agents.

An agent is an async function ``fn(input, ctx) -> result`` registered by name with ``@agent``;
consuming, timeouts, acks, retries, dead letters and heartbeats belong to the worker runtime
(``service.worker``).

May import: no other layer (the SDK is the ground floor an agent stands on).
"""

from agents.context import LlmEndpoint, TaskContext
from agents.errors import AgentError, NonRetryableError, RetryLater
from agents.registry import (
    AgentSpec,
    FlowLimits,
    agent,
    get_agent,
    known_agents,
    load_agent_modules,
)
from agents.retry import RetryPolicy

__all__ = [
    "AgentError",
    "AgentSpec",
    "FlowLimits",
    "LlmEndpoint",
    "NonRetryableError",
    "RetryLater",
    "RetryPolicy",
    "TaskContext",
    "agent",
    "get_agent",
    "known_agents",
    "load_agent_modules",
]
