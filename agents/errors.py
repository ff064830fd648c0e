"""The two errors an agent raises: ``AgentError`` for a failure a retry may fix,
``NonRetryableError`` for one it cannot (the task goes dead at once)."""

from __future__ import annotations


class AgentError(Exception):
    """Raised by agent code for a failure that may succeed when retried."""


class NonRetryableError(AgentError):
    """Raised by agent code for a failure that retrying cannot fix; the task goes dead at once."""
