"""The errors an agent raises: ``AgentError`` for a failure a retry may fix,
``NonRetryableError`` for one it cannot (the task goes dead at once), ``RetryLater`` when the
service it calls says when to come back (no attempt is spent)."""

from __future__ import annotations


class AgentError(Exception):
    """Raised by agent code for a failure that may succeed when retried."""


class NonRetryableError(AgentError):
    """Raised by agent code for a failure that retrying cannot fix; the task goes dead at once."""


class RetryLater(AgentError):
    """Raised when a service the agent calls asks it to come back later (HTTP 429 or 503 with
    ``Retry-After``): the task is retried after ``after_s`` without spending an attempt."""

    def __init__(self, message: str, after_s: float) -> None:
        super().__init__(message)
        self.after_s = after_s
