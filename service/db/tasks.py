"""Task store, API side: submit, read, list, cancel and requeue."""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.db.pool import Pool
from service.db.query import Store
from service.db.rows import (
    EVENT_COLUMNS,
    TASK_COLUMNS,
    batch_transition_sql,
    jsonb,
    to_event,
    to_task,
    transition_sql,
    unnest_inputs,
)
from service.db.task_stats import PAST_TIMEOUT, PAST_TIMEOUT_GRACE_S
from service.domain import CANCELLABLE, REQUEUEABLE, Task, TaskEvent, TaskStatus, json_text
from service.errors import IdempotencyConflict, InvalidTransition, TaskNotFound


@dataclass(frozen=True)
class NewTask:
    """A validated submission, ready to store."""

    agent: str
    input: Any
    tenant: str
    priority: int
    max_attempts: int
    timeout_s: float
    checksum: str
    idempotency_key: str | None = None
    trace_id: str | None = None
    traceparent: str | None = None
    run_at: datetime | None = None
    delay_s: float = 0.0
    """Not before ``run_at`` and not before ``delay_s`` from now (the later of the two)."""
    concurrency_key: str | None = None
    callback_url: str | None = None


_INSERT_INPUTS = {
    "id": "uuid", "agent": "text", "tenant": "text", "input": "jsonb", "priority": "smallint",
    "max_attempts": "integer", "timeout_s": "float8", "idempotency_key": "text",
    "trace_id": "text", "traceparent": "text", "checksum": "text", "run_at": "timestamptz",
    "delay_s": "float8", "concurrency_key": "text", "callback_url": "text",
}
_INSERT = (
    "WITH t AS (INSERT INTO tasks (id, agent, tenant, input, status, priority, max_attempts,"
    " timeout_s, idempotency_key, trace_id, traceparent, input_checksum, available_at,"
    " concurrency_key, callback_url)"
    " SELECT id, agent, tenant, input, 'queued', priority, max_attempts, timeout_s,"
    " idempotency_key, trace_id, traceparent, checksum,"
    " greatest(run_at, now() + make_interval(secs => delay_s)), concurrency_key, callback_url"
    f" FROM {unnest_inputs(_INSERT_INPUTS)}"
    " ON CONFLICT (tenant, idempotency_key) DO NOTHING RETURNING *),"
    " e AS (INSERT INTO task_events (task_id, kind, status, attempt, detail)"
    " SELECT id, 'submitted', status, attempts, jsonb_strip_nulls(jsonb_build_object("
    "'trace_id', trace_id, 'due_at', CASE WHEN available_at > now() THEN available_at END))"
    " FROM t)"
    f" SELECT {TASK_COLUMNS} FROM t"
)

_WITHOUT_BODIES = TASK_COLUMNS.replace(" input,", " NULL AS input,").replace(
    " result,", " NULL AS result,")

_OWNED = "(%(tenant)s::text IS NULL OR tenant = %(tenant)s)"
"""The task belongs to the caller's tenant (``tenant`` ``None``: an admin sees every one)."""

_CANCEL = transition_sql(
    "UPDATE tasks SET cancel_requested = true, version = version + 1, updated_at = now(),"
    " status = CASE WHEN status = 'running' THEN status ELSE 'cancelled' END,"
    " finished_at = CASE WHEN status = 'running' THEN finished_at ELSE now() END,"
    " published_at = coalesce(published_at, now())"
    f" WHERE id = %(id)s AND {_OWNED} AND status IN ('queued', 'retrying', 'running')",
    "CASE WHEN status = 'running' THEN 'cancel_requested' ELSE 'cancelled' END",
    kind_is_sql=True,
)

_REQUEUE_INPUTS = {"id": "uuid", "dead_letter": "bigint"}
_REQUEUE = batch_transition_sql(
    "status = 'queued', attempt_budget = coalesce(tasks.attempt_budget, tasks.max_attempts),"
    " max_attempts = tasks.attempts + coalesce(tasks.attempt_budget, tasks.max_attempts),"
    " result = NULL, cancel_requested = false, run_id = NULL, worker_id = NULL,"
    " started_at = NULL, finished_at = NULL, available_at = now(), published_at = NULL,"
    " version = tasks.version + 1, updated_at = now()",
    f"tasks.status = 'dead' AND {_OWNED}",
    "requeued", _REQUEUE_INPUTS,
    detail="jsonb_strip_nulls(jsonb_build_object('by', %(by)s::text,"
           " 'dead_letter', i.dead_letter))",
    also="d AS (UPDATE dead_letters SET replayed_at = now(), replayed_by = %(by)s"
         " WHERE task_id IN (SELECT id FROM t) AND replayed_at IS NULL)",
)
"""A dead task back in the queue with its original attempt budget, its open dead letter (if
the dead-letter consumer recorded one) stamped replayed, in one statement."""


ID_PREFIX = r"[0-9a-fA-F][0-9a-fA-F-]{0,35}"
"""What a task id prefix may be: hex digits, with or without the dashes of a UUID."""


def id_range(prefix: str) -> tuple[str, str]:
    """The lowest and highest UUIDs that start with ``prefix`` (dashes ignored)."""
    digits = prefix.replace("-", "").lower()
    if not digits or len(digits) > 32 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError(f"{prefix!r} is not the start of a task id (hex digits)")
    return str(uuid.UUID(digits.ljust(32, "0"))), str(uuid.UUID(digits.ljust(32, "f")))


class TaskStore(Store):
    """Reads and API-driven transitions of tasks."""

    def __init__(self, pool: Pool, idempotency_ttl_s: float = 86400.0) -> None:
        super().__init__(pool)
        self.idempotency_ttl_s = idempotency_ttl_s
        self._inserts = self.batcher("task_insert", _INSERT, _INSERT_INPUTS, key="id")

    async def submit(self, new: NewTask) -> tuple[Task, bool]:
        """Store a task and its ``submitted`` event in one transaction.

        Returns ``(task, created)``; with an idempotency key the tenant used before (within
        ``idempotency_ttl_s``) and the same request, the original task comes back with
        ``created=False``; a different request raises. An expired key is released and the
        task created anew. Concurrent submissions share one statement.
        """
        row = await self._inserts.submit((
            uuid.uuid4(), new.agent, new.tenant, json_text(new.input), new.priority,
            new.max_attempts, new.timeout_s, new.idempotency_key, new.trace_id, new.traceparent,
            new.checksum, new.run_at, new.delay_s, new.concurrency_key, new.callback_url))
        if row is not None:
            return to_task(row), True
        found = await self.fetch_one(
            "task_by_idempotency_key",
            f"SELECT {TASK_COLUMNS}, created_at < now() - %s * interval '1 second' AS expired"
            " FROM tasks WHERE tenant = %s AND idempotency_key = %s",
            (self.idempotency_ttl_s, new.tenant, new.idempotency_key))
        if found is None or found.pop("expired"):  # released meanwhile, or expired: free it
            await self.run("idempotency_release", "UPDATE tasks SET idempotency_key = NULL"
                           " WHERE tenant = %s AND idempotency_key = %s"
                           " AND created_at < now() - %s * interval '1 second'",
                           (new.tenant, new.idempotency_key, self.idempotency_ttl_s))
            return await self.submit(new)
        existing = to_task(found)
        same = (existing.input_checksum, existing.agent, existing.priority, existing.timeout_s)
        if same != (new.checksum, new.agent, new.priority, new.timeout_s):
            raise IdempotencyConflict(new.idempotency_key or "", existing.id)
        return existing, False

    async def get(self, task_id: str, tenant: str | None = None) -> Task:
        """The task, when it is ``tenant``'s (any tenant's for ``None``); else TaskNotFound."""
        row = await self.fetch_one(
            "task_get", f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = %(id)s AND {_OWNED}",
            {"id": task_id, "tenant": tenant})
        if row is None:
            raise TaskNotFound(task_id)
        return to_task(row)

    async def page(self, *, status: TaskStatus | None, agent: str | None, limit: int,
                   after: tuple[datetime, str] | None, tenant: str | None = None,
                   with_bodies: bool = False, id_prefix: str | None = None,
                   stuck_queued_s: float | None = None) -> builtins.list[Task]:
        """Newest first; ``after`` is the (created_at, id) of the last task of the previous
        page. Inputs and results are read only ``with_bodies``. ``id_prefix``: tasks whose id
        starts with these hex digits. ``stuck_queued_s``: only stuck tasks, i.e. running past
        their timeout, or due and waiting for longer than that."""
        where: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if id_prefix is not None:
            where.append("id BETWEEN %(id_low)s::uuid AND %(id_high)s::uuid")
            params["id_low"], params["id_high"] = id_range(id_prefix)
        if stuck_queued_s is not None:
            where.append(f"(({PAST_TIMEOUT}) OR (status IN ('queued', 'retrying')"
                         " AND available_at < now() - make_interval(secs => %(stuck_s)s)))")
            params["grace_s"], params["stuck_s"] = PAST_TIMEOUT_GRACE_S, stuck_queued_s
        if tenant is not None:
            where.append("tenant = %(tenant)s")
            params["tenant"] = tenant
        if status is not None:
            where.append("status = %(status)s")
            params["status"] = status.value
        if agent is not None:
            where.append("agent = %(agent)s")
            params["agent"] = agent
        if after is not None:
            where.append("(created_at, id) < (%(after_at)s, %(after_id)s::uuid)")
            params["after_at"], params["after_id"] = after
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        columns = TASK_COLUMNS if with_bodies else _WITHOUT_BODIES
        query = (f"SELECT {columns} FROM tasks {clause}"
                 " ORDER BY created_at DESC, id DESC LIMIT %(limit)s")
        return [to_task(row) for row in await self.fetch_all("task_list", query, params)]

    async def events(self, task_id: str, tenant: str | None = None) -> list[TaskEvent]:
        rows = await self.fetch_all(
            "task_events",
            f"SELECT {EVENT_COLUMNS} FROM task_events WHERE task_id = %(id)s"
            f" AND EXISTS (SELECT 1 FROM tasks WHERE id = %(id)s AND {_OWNED}) ORDER BY id",
            {"id": task_id, "tenant": tenant})
        if not rows:
            await self.get(task_id, tenant)  # raises TaskNotFound for an unknown id
        return [to_event(row) for row in rows]

    async def events_after(self, task_id: str, after: int,
                           limit: int = 1000) -> builtins.list[TaskEvent]:
        """The task's timeline events after event ``after``, oldest first (for a follower
        that has already been shown the task is the caller's)."""
        rows = await self.fetch_all(
            "task_events_after",
            f"SELECT {EVENT_COLUMNS} FROM task_events WHERE task_id = %(id)s AND id > %(after)s"
            " ORDER BY id LIMIT %(limit)s", {"id": task_id, "after": after, "limit": limit})
        return [to_event(row) for row in rows]

    async def cancel(self, task_id: str, requested_by: str, tenant: str | None = None) -> Task:
        """Queued or retrying tasks become ``cancelled``; running ones get a cancel request."""
        return await self._transition("task_cancel", _CANCEL, task_id, requested_by, "cancel",
                                      CANCELLABLE, tenant)

    async def requeue(self, task_id: str, requested_by: str,
                      tenant: str | None = None) -> Task:
        """Put a dead task back in the queue with a fresh budget of attempts (as many as it
        was first given). Attempts keep counting (the timeline stays unambiguous); the limit
        moves up instead."""
        done = await self.requeue_many([task_id], requested_by, tenant)
        if done:
            return done[0]
        raise await self._refused(task_id, "retry", REQUEUEABLE, tenant)

    async def requeue_many(self, task_ids: builtins.list[str], requested_by: str,
                           tenant: str | None = None,
                           dead_letters: builtins.list[int] | None = None,
                           ) -> builtins.list[Task]:
        """``requeue`` for many tasks in one statement: those still dead go back (the others
        are left out of the answer). ``dead_letters``: the record each replay comes from,
        named on the timeline."""
        rows = await self.fetch_all("task_requeue", _REQUEUE, {
            "id": task_ids, "dead_letter": dead_letters or [None] * len(task_ids),
            "tenant": tenant, "by": requested_by, "worker_id": None})
        return [to_task(row) for row in rows]

    async def _transition(self, operation: str, sql: str, task_id: str, actor: str, action: str,
                          allowed: tuple[TaskStatus, ...], tenant: str | None) -> Task:
        params = {"id": task_id, "tenant": tenant, "worker_id": None,
                  "detail": jsonb({"by": actor})}
        row = await self.fetch_one(operation, sql, params)
        if row is not None:
            return to_task(row)
        raise await self._refused(task_id, action, allowed, tenant)

    async def _refused(self, task_id: str, action: str, allowed: tuple[TaskStatus, ...],
                       tenant: str | None) -> InvalidTransition:
        """Why ``action`` did not apply (``TaskNotFound`` raised for a task not there)."""
        current = await self.get(task_id, tenant)
        return InvalidTransition(task_id, current.status, action, [s.value for s in allowed])

