"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from service.domain import Task, TaskEvent, TaskStatus

Priority = Annotated[int, msgspec.Meta(ge=0, le=9, description="0 (default) to 9")]
Attempts = Annotated[int, msgspec.Meta(ge=1, le=100)]
Timeout = Annotated[float, msgspec.Meta(gt=0, description="seconds one attempt may run")]


class SubmitTask(msgspec.Struct, forbid_unknown_fields=True):
    """A task submission."""

    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    input: Any = None
    priority: Priority = 0
    max_attempts: Attempts | None = None
    timeout_s: Timeout | None = None


class Links(msgspec.Struct):
    self: str
    events: str
    cancel: str
    retry: str


class TaskOut(msgspec.Struct, kw_only=True):
    id: str
    agent: str
    status: TaskStatus
    input: Any
    priority: int
    attempts: int
    max_attempts: int
    timeout_s: float
    result: Any | None
    error: str | None
    trace_id: str | None
    idempotency_key: str | None
    cancel_requested: bool
    worker_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    published_at: datetime | None
    links: Links

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        base = f"/v1/tasks/{task.id}"
        fields = {f: getattr(task, f) for f in cls.__struct_fields__ if f != "links"}
        return cls(**fields, links=Links(base, f"{base}/events", f"{base}/cancel",
                                         f"{base}/retry"))


class TaskPage(msgspec.Struct):
    items: list[TaskOut]
    next_cursor: str | None


class EventsOut(msgspec.Struct):
    task_id: str
    events: list[TaskEvent]


class AgentType(msgspec.Struct):
    name: str
    description: str
    queue: str
    live_workers: int


class AgentsOut(msgspec.Struct):
    agents: list[AgentType]
    workers: list[dict[str, Any]]
    source: str  # "redis" or "postgresql"


class DependencyHealth(msgspec.Struct):
    status: str  # "up" | "down"
    latency_ms: float | None
    error: str | None = None


class Readiness(msgspec.Struct):
    status: str  # "ready" | "degraded" | "unavailable"
    dependencies: dict[str, DependencyHealth]
    instance: str
    """The server instance that answered (``ORCH_INSTANCE_ID``, set by whoever started it)."""
