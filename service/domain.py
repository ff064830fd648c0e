"""Task states and records, shared by the API, the store, the cache and the workers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from agents.errors import NonRetryableError
from service.canonical import canonical_bytes, stored_json
from service.errors import InputTooLarge, ResultTooLarge
from service.json_nesting import nesting_exceeds


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
    tenant: str = ""
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
    concurrency_key: str | None = None
    waits: int = 0
    """Times it waited for a flow limit, or was told by a provider to come back later."""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    """What its model calls used, over all its attempts."""
    callback_url: str | None = None
    callback_state: str | None = None
    """Its completion callback: ``pending``, ``delivered``, ``failed`` (given up) or
    ``refused`` (its address may not be called)."""
    callback_attempts: int = 0


@dataclass(frozen=True)
class TaskFields:
    """What a task is created with, checked (``service.api.task_fields``): by a submission, and
    by each due time of a schedule."""

    agent: str
    input: Any
    checksum: str
    priority: int
    max_attempts: int
    timeout_s: float


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
    """SHA-256 of the input in canonical JSON, the form PostgreSQL stores (``service.canonical``):
    stored with the task, verified before each run."""
    return hashlib.sha256(canonical_bytes(payload)).hexdigest()


def input_intact(task: Task) -> bool:
    """The task's input, as read back from PostgreSQL, still matches the checksum taken at
    submission: the check a worker makes before each run."""
    return input_checksum(task.input) == task.input_checksum


def storable_input(payload: Any, max_bytes: int) -> Any:
    """A submitted input in the form PostgreSQL stores it (what is hashed is what is stored).

    Raises ``InputTooLarge`` when that form is more than ``max_bytes``: ``1e308`` is 5 bytes in
    a request body and 309 digits stored.
    """
    stored = stored_json(payload)
    if stored.size > max_bytes:
        raise InputTooLarge(stored.size, max_bytes)
    return stored.value


_encode_json = msgspec.json.Encoder().encode


def json_text(value: Any) -> str:
    """``value`` as JSON text (fast; NaN and infinities become ``null`` as JSON has none)."""
    return _encode_json(value).decode()


def result_json(result: Any, max_bytes: int | None = None, max_depth: int | None = None) -> str:
    """An agent's result as the JSON text stored in the task row.

    Raises ``NonRetryableError`` when the result has no JSON form or nests deeper than
    ``max_depth`` (every client reading it would have to decode it), and ``ResultTooLarge``
    when it is more than ``max_bytes`` as stored: running the task again would return the same
    kind of value.
    """
    try:
        stored = stored_json(result)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise NonRetryableError(
            f"the agent's result ({type(result).__name__}) cannot be stored as JSON: {exc}"
        ) from exc
    if max_bytes is not None and stored.size > max_bytes:
        raise ResultTooLarge(stored.size, max_bytes)
    if max_depth is not None and nesting_exceeds(stored.text.encode(), max_depth):
        raise NonRetryableError(
            f"the agent's result nests arrays and objects deeper than {max_depth} levels"
            " (ORCH_MAX_JSON_DEPTH); return flatter JSON")
    return stored.text
