"""The retention policy: how long finished tasks are kept, by final status (settings
``ORCH_RETENTION_SUCCEEDED``, ``_CANCELLED``, ``_DEAD``; ``service.db.retention`` applies it)."""

from __future__ import annotations

from dataclasses import dataclass

from service.domain import TaskStatus
from service.durations import duration_s
from service.settings import TaskSettings

RETAINED = (TaskStatus.SUCCEEDED, TaskStatus.CANCELLED, TaskStatus.DEAD)
"""Only finished tasks are ever deleted."""
KEEP_FOREVER = ("never", "off")


def retention_age_s(text: str) -> float | None:
    """``"14d"`` -> seconds; ``never`` -> ``None`` (kept for ever)."""
    if text.strip().lower() in KEEP_FOREVER:
        return None
    age = duration_s(text)
    if age <= 0:
        raise ValueError(f"a retention must be above zero or 'never', not {text!r}")
    return age


@dataclass(frozen=True)
class RetentionPolicy:
    ages_s: dict[TaskStatus, float | None]

    @classmethod
    def of(cls, tasks: TaskSettings) -> RetentionPolicy:
        """The settings' policy; a ``ValueError`` naming the variable for a bad value."""
        ages: dict[TaskStatus, float | None] = {}
        for status in RETAINED:
            text = getattr(tasks, f"retention_{status.value}")
            try:
                ages[status] = retention_age_s(text)
            except ValueError as exc:
                raise ValueError(f"ORCH_RETENTION_{status.value.upper()}: {exc}") from None
        return cls(ages)
