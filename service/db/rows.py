"""Shared SQL fragments and row conversion for the task store."""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg.types.json import Jsonb

from service.domain import Task, TaskEvent

TASK_COLUMNS = (
    "id::text AS id, agent, status, input, priority, attempts, max_attempts, timeout_s, result,"
    " error, trace_id, idempotency_key, input_checksum, cancel_requested, worker_id, version,"
    " available_at, created_at, started_at, finished_at, updated_at, published_at"
)

EVENT_COLUMNS = "id, task_id::text AS task_id, at, kind, status, attempt, worker_id, detail"


def transition_sql(update: str, kind: str, kind_is_sql: bool = False) -> str:
    """Wrap an ``UPDATE tasks ... RETURNING *`` so the same statement appends a task event.

    The update must return every column; parameters ``%(worker_id)s`` and ``%(detail)s`` feed
    the event row. One round trip per state transition. ``kind`` is the event name, or a SQL
    expression over the updated row when ``kind_is_sql``.
    """
    kind_expr = kind if kind_is_sql else f"'{kind}'"
    return (
        f"WITH t AS ({update} RETURNING *),"
        " e AS (INSERT INTO task_events (task_id, kind, status, attempt, worker_id, detail)"
        f" SELECT id, {kind_expr}, status, attempts, %(worker_id)s, %(detail)s FROM t)"
        f" SELECT {TASK_COLUMNS}, run_id::text AS run_id, traceparent FROM t"
    )


def to_task(row: dict[str, Any]) -> Task:
    return msgspec.convert(row, Task)


def to_event(row: dict[str, Any]) -> TaskEvent:
    return msgspec.convert(row, TaskEvent)


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value)
