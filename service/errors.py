"""The orchestrator's error tree: each error says what happened and what a person can do."""

from __future__ import annotations

from collections.abc import Sequence

from agents.errors import NonRetryableError


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""


def one_line(text: object) -> str:
    """``text`` with every run of white space (newlines too) made one space."""
    return " ".join(str(text).split())


class DependencyUnavailable(OrchestratorError):
    """A service the process needs (PostgreSQL, RabbitMQ, Redis) cannot be used.

    The subclasses tell why: nothing answers, the login was refused, or the database or vhost
    does not exist. ``url`` is always redacted; ``hint`` is what a person can do."""

    def __init__(self, name: str, url: str, hint: str, cause: BaseException | None = None,
                 *, message: str | None = None) -> None:
        self.name, self.url, self.hint, self.cause = name, url, hint, cause
        if message is None:
            detail = f": {one_line(cause)}" if cause else ""
            message = f"{name} at {url} cannot be used{detail}; {hint}"
        super().__init__(message)


class DependencyNotAnswering(DependencyUnavailable):
    """Nothing answers at the URL's host and port: refused, timed out or unknown host.

    ``start_hint`` says how to start the service; ``fix`` replaces it when starting it would
    not help (the service answers on its usual port, or the host name does not resolve)."""

    def __init__(self, name: str, url: str, reason: str, *, start_hint: str,
                 fix: str | None = None, cause: BaseException | None = None) -> None:
        self.reason = reason
        tail = f"; {fix}" if fix else f". {start_hint}"
        super().__init__(name, url, fix or start_hint, cause,
                         message=f"{name} is not answering at {url} ({reason}){tail}")


class DependencyLoginRefused(DependencyUnavailable):
    """The service runs but refused the user and password (or the user does not exist)."""

    def __init__(self, name: str, url: str, words: str, variable: str,
                 cause: BaseException | None = None) -> None:
        hint = f"check the user and password in {variable}"
        said = one_line(words).rstrip(".")
        super().__init__(name, url, hint, cause,
                         message=f"{name} at {url} refused the login: {said}; {hint}")


class DependencyResourceMissing(DependencyUnavailable):
    """The service runs and the login works, but the database (or vhost) named does not exist.

    ``note`` follows the name, e.g. " (and it could not be created: ...)"."""

    def __init__(self, name: str, url: str, what: str, which: str, hint: str, *,
                 note: str = "", cause: BaseException | None = None) -> None:
        self.what, self.which = what, which
        super().__init__(name, url, hint, cause,
                         message=f"{name} at {url} has no {what} {which}{note}; {hint}")


class MissingExtra(OrchestratorError):
    """A command needs optional packages that are not installed (an extra of the package)."""

    def __init__(self, what: str, extra: str, cause: ImportError) -> None:
        super().__init__(f"{what} needs the '{extra}' extra ({cause.name or cause} is not"
                         f" installed): pip install 'agent-orchestrator[{extra}]' (in a checkout:"
                         f" pip install -e '.[{extra}]')")


class PortUnavailable(OrchestratorError):
    """A port the process must listen on is taken or not allowed."""

    def __init__(self, what: str, host: str, port: int, hint: str, cause: OSError) -> None:
        super().__init__(f"cannot serve {what} on {host}:{port} ({cause.strerror}); {hint}")


class TaskNotFound(OrchestratorError):
    """No task has that id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id} does not exist")


class DeadLetterNotFound(OrchestratorError):
    """No dead letter has that id."""

    def __init__(self, dead_letter_id: int) -> None:
        super().__init__(f"dead letter {dead_letter_id} does not exist (orchestrator dlq list"
                         " shows them)")


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


class ScheduleNotFound(OrchestratorError):
    """The caller's tenant has no schedule of that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"schedule {name!r} does not exist (orchestrator schedule list shows"
                         " them)")


class ScheduleExists(OrchestratorError):
    """The caller's tenant has a schedule of that name already."""

    def __init__(self, name: str) -> None:
        super().__init__(f"schedule {name!r} exists already: delete it first, or pick another"
                         " name")


class IdempotencyConflict(OrchestratorError):
    """The idempotency key was used before with a different request body."""

    def __init__(self, key: str, task_id: str) -> None:
        self.task_id = task_id
        super().__init__(
            f"Idempotency-Key {key!r} was already used for task {task_id} with a different body; "
            "use a new key for a different request"
        )


class IntegrityError(NonRetryableError):
    """Stored task data no longer matches its checksum (data corruption); never retried."""


class InputTooLarge(OrchestratorError):
    """A task's input is larger than the body limit once PostgreSQL has stored it (413)."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(
            f"the input is {size} bytes as PostgreSQL stores it (numbers written out in full:"
            f" 1e308 is 309 digits), above the limit of {limit} bytes (ORCH_MAX_BODY_BYTES on"
            " the server); send a smaller input, or very large or small numbers as strings")


class ResultTooLarge(NonRetryableError):
    """An agent's result is larger than ``ORCH_MAX_RESULT_BYTES`` as stored; never retried."""

    def __init__(self, size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"the agent's result is {size} bytes, above the limit of {limit}"
                         " bytes (ORCH_MAX_RESULT_BYTES); return less, or store the data"
                         " elsewhere and return a reference to it")


class KeyProblem(OrchestratorError):
    """An API key cannot be created, found or changed as asked (``status``: the HTTP one)."""

    def __init__(self, message: str, status: int = 422) -> None:
        self.status = status
        super().__init__(message)


class TooManyRequests(OrchestratorError):
    """A limit of the tenant (or of the client address) is reached: 429 with ``headers``."""

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        self.headers = headers
        super().__init__(message)
