"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from service.api.openapi import STORABLE_JSON, documented
from service.callback_target import MAX_URL_CHARS, URL_PATTERN
from service.domain import Task, TaskEvent, TaskStatus

Priority = Annotated[int, msgspec.Meta(ge=0, le=9, description="0 (default) to 9")]
Attempts = Annotated[int, msgspec.Meta(ge=1, le=100)]
Timeout = Annotated[float, msgspec.Meta(gt=0, description="seconds one attempt may run")]
MAX_DELAY_S = 366 * 86400.0
"""How far ahead a task may be scheduled (``run_at`` / ``delay_s``)."""
Delay = Annotated[float, msgspec.Meta(ge=0, le=MAX_DELAY_S, description=(
    "seconds from now before the task may start (stored now, published when due)"))]
RunAt = Annotated[str, msgspec.Meta(max_length=64, description=(
    "the time the task may start, ISO 8601 with an offset (2026-12-03T18:00:00Z); a past time"
    " starts it now"))]


class TaskBody(msgspec.Struct, forbid_unknown_fields=True):
    """The fields of a task, as a submission and a schedule give them."""

    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    input: Annotated[Any, documented(all_of=[STORABLE_JSON])] = None
    priority: Priority = 0
    max_attempts: Attempts | None = None
    timeout_s: Timeout | None = None
    concurrency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description=(
        "tasks with the same key (a customer, a conversation) share the agent's"
        " max_concurrency_per_key"))] | None = None


class SubmitTask(TaskBody, forbid_unknown_fields=True):
    """A task submission."""

    run_at: RunAt | None = None
    delay_s: Delay | None = None
    callback_url: Annotated[str, msgspec.Meta(
        max_length=MAX_URL_CHARS, pattern=URL_PATTERN, description=(
            "POSTed the final task when it ends, signed with the tenant's secret"
            " (Orchestrator-Signature; GET /v1/callbacks/secret)"))] | None = None


class CallbackSecretOut(msgspec.Struct):
    """The secret a tenant's callbacks are signed with (HMAC-SHA256 of ``"<t>." + body``)."""

    tenant: str
    secret: str
    previous_secret_valid_until: datetime | None
    """After a rotation the previous secret signs too, until then."""
    signature_header: str


class Links(msgspec.Struct):
    self: str
    events: str
    cancel: str
    retry: str


BODIES = ("input", "result")
"""The parts of a task a list leaves out unless asked (``include=``)."""


class TaskOut(msgspec.Struct, kw_only=True):
    id: str
    agent: str
    tenant: str
    status: TaskStatus
    input: Any | msgspec.UnsetType = msgspec.UNSET
    """Left out of list items unless ``include=input``."""
    priority: int
    attempts: int
    max_attempts: int
    timeout_s: float
    result: Any | msgspec.UnsetType = msgspec.UNSET  # Any: null too (oneOf must not overlap)
    """Left out of list items unless ``include=result``."""
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
    available_at: datetime
    """When the task may start: its submission, its ``run_at``/``delay_s``, or its next retry."""
    concurrency_key: str | None
    waits: int
    """Times it waited for a flow limit of its agent, or was told to come back later."""
    tokens_in: int
    tokens_out: int
    cost_usd: float
    """Model tokens its attempts used, and their cost (``ORCH_LLM_PRICES``)."""
    callback_url: str | None
    callback_state: str | None
    """Its completion callback once it ended: pending, delivered, failed (given up) or refused
    (an address callbacks may not call)."""
    callback_attempts: int
    links: Links

    @classmethod
    def of(cls, task: Task, bodies: tuple[str, ...] = BODIES) -> TaskOut:
        """The task as served; ``bodies`` names which of input and result it carries (a list
        leaves both out unless asked)."""
        base = f"/v1/tasks/{task.id}"
        fields = {f: getattr(task, f) for f in cls.__struct_fields__
                  if f != "links" and (f not in BODIES or f in bodies)}
        return cls(**fields, links=Links(base, f"{base}/events", f"{base}/cancel",
                                         f"{base}/retry"))


class TaskPage(msgspec.Struct):
    items: list[TaskOut]
    next_cursor: str | None


class EventsOut(msgspec.Struct):
    task_id: str
    events: list[TaskEvent]


class AgentLimits(msgspec.Struct):
    """An agent type's flow limits across all its workers (``null``: none)."""

    rate: str | None
    tokens: str | None
    concurrency: int | None
    max_concurrency_per_key: int | None


class AgentType(msgspec.Struct):
    name: str
    description: str
    queue: str
    """The queue of the normal priority band."""
    queues: list[str]
    """Every queue of the agent type, one per priority band, lowest first."""
    live_workers: int
    limits: AgentLimits
    """As declared with ``@agent`` and changed by this deployment's ``ORCH_AGENT_LIMITS``."""


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
    instance: str
    """The server instance that answered (``ORCH_INSTANCE_ID``, set by whoever started it)."""
    dependencies: dict[str, DependencyHealth] | msgspec.UnsetType = msgspec.UNSET
    """Admin keys only."""
    rate_limits: str | msgspec.UnsetType = msgspec.UNSET
    """Admin keys only: "enforced", or "failing open" while Redis cannot answer."""
