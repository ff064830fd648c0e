"""Task states and records, shared by the API, the store, the cache and the workers."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from agents.errors import NonRetryableError


class TaskStatus(StrEnum):
    """Where a task stands. ``succeeded``, ``dead`` and ``cancelled`` are final."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.DEAD, TaskStatus.CANCELLED})
CANCELLABLE = (TaskStatus.QUEUED, TaskStatus.RETRYING, TaskStatus.RUNNING)
REQUEUEABLE = (TaskStatus.DEAD,)


class Task(msgspec.Struct, kw_only=True):
    """One task as stored and as served by the API."""

    id: str
    agent: str
    status: TaskStatus
    input: Any
    priority: int
    attempts: int
    max_attempts: int
    timeout_s: float
    result: Any | None = None
    error: str | None = None
    trace_id: str | None = None
    idempotency_key: str | None = None
    input_checksum: str
    cancel_requested: bool = False
    worker_id: str | None = None
    version: int
    available_at: datetime
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    published_at: datetime | None = None


class TaskEvent(msgspec.Struct, kw_only=True):
    """One state transition of a task: the timeline an operator inspects."""

    id: int
    task_id: str
    at: datetime
    kind: str
    status: TaskStatus
    attempt: int
    worker_id: str | None
    detail: dict[str, Any]


def input_checksum(payload: Any) -> str:
    """SHA-256 of the input in canonical JSON: stored with the task, verified before each run."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


_encode_json = msgspec.json.Encoder().encode


def json_text(value: Any) -> str:
    """``value`` as JSON text (fast; NaN and infinities become ``null`` as JSON has none)."""
    return _encode_json(value).decode()


def result_json(result: Any) -> str:
    """An agent's result as the JSON text stored in the task row.

    Raises ``NonRetryableError`` when the result has no JSON form: running the task again
    would return the same kind of value.
    """
    try:
        return json_text(result)
    except (TypeError, ValueError, OverflowError) as exc:
        raise NonRetryableError(
            f"the agent's result ({type(result).__name__}) cannot be stored as JSON: {exc}"
        ) from exc
