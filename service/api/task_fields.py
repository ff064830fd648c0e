"""The fields every way of creating a task shares (a submission, a schedule), checked once:
a known agent, a priority the key may use, a timeout under the ceiling, an input that can be
stored, and the deployment's defaults for what was left out."""

from __future__ import annotations

from typing import Any

from litestar.exceptions import PermissionDeniedException, ValidationException

from service.api.state import Services
from service.db.keys import ApiKey
from service.domain import TaskFields, input_checksum, storable_input
from service.errors import UnknownAgent


def task_fields(services: Services, key: ApiKey, agent: str, payload: Any, priority: int,
                max_attempts: int | None, timeout_s: float | None) -> TaskFields:
    """The fields as stored, or the 4xx that says what to change."""
    settings = services.settings
    if agent not in services.agents:
        raise UnknownAgent(agent, services.agents)
    ceiling = settings.limits.max_priority
    if priority > ceiling and not key.may("tasks:priority"):
        raise PermissionDeniedException(
            f"priority {priority} needs the scope 'tasks:priority' (without it the"
            f" highest is {ceiling}); ask an operator for a key with it")
    timeout_s = timeout_s if timeout_s is not None else settings.tasks.timeout_s
    if timeout_s > settings.tasks.max_timeout_s:
        raise ValidationException(
            f"timeout_s {timeout_s:g} is above the limit of {settings.tasks.max_timeout_s:g}s",
            extra=[{"source": "body", "key": "timeout_s",
                    "message": f"must be at most {settings.tasks.max_timeout_s:g}"}])
    stored = storable_input(payload, settings.api.max_body_bytes)  # as stored, or 413
    return TaskFields(agent, stored, input_checksum(stored), priority,
                      max_attempts or settings.tasks.max_attempts, timeout_s)
