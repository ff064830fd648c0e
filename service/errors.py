"""The orchestrator's error tree: each error says what happened and what a person can do."""

from __future__ import annotations

from collections.abc import Sequence


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""


class DependencyUnavailable(OrchestratorError):
    """A service the process needs (PostgreSQL, RabbitMQ, Redis) does not answer."""

    def __init__(self, name: str, url: str, hint: str, cause: BaseException | None = None) -> None:
        self.name, self.url, self.hint = name, url, hint
        detail = f": {' '.join(str(cause).split())}" if cause else ""  # one line
        super().__init__(f"{name} is not reachable at {url}{detail}. {hint}")


class PortUnavailable(OrchestratorError):
    """A port the process must listen on is taken or not allowed."""

    def __init__(self, what: str, host: str, port: int, hint: str, cause: OSError) -> None:
        super().__init__(f"cannot serve {what} on {host}:{port} ({cause.strerror}); {hint}")


class TaskNotFound(OrchestratorError):
    """No task has that id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} does not exist")


class UnknownAgent(OrchestratorError):
    """The task names an agent type nobody registered."""

    def __init__(self, agent: str, known: Sequence[str]) -> None:
        self.known = list(known)
        super().__init__(f"unknown agent {agent!r}; known agents: {', '.join(self.known)}")


class InvalidTransition(OrchestratorError):
    """The requested action does not apply to the task's current status."""

    def __init__(self, task_id: str, status: str, action: str, allowed: Sequence[str]) -> None:
        self.status = str(status)
        super().__init__(
            f"cannot {action} task {task_id} in status {self.status!r}; "
            f"{action} applies to: {', '.join(allowed)}"
        )


class IdempotencyConflict(OrchestratorError):
    """The idempotency key was used before with a different request body."""

    def __init__(self, key: str, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"Idempotency-Key {key!r} was already used for task {task_id} with a different body; "
            "use a new key for a different request"
        )


class AgentError(Exception):
    """Raised by agent code for a failure that may succeed when retried."""


class NonRetryableError(AgentError):
    """Raised by agent code for a failure that retrying cannot fix; the task goes dead at once."""


class IntegrityError(NonRetryableError):
    """Stored task data no longer matches its checksum (data corruption); never retried."""
