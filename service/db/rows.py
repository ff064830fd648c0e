"""Shared SQL fragments and row conversion for the task store."""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg.types.json import Jsonb

from service.domain import Task, TaskEvent

TASK_COLUMNS = (
    "id::text AS id, agent, tenant, status, input, priority, attempts, max_attempts, timeout_s,"
    " result, error, trace_id, idempotency_key, input_checksum, cancel_requested, worker_id,"
    " version, available_at, created_at, started_at, finished_at, updated_at, published_at,"
    " concurrency_key, waits, tokens_in, tokens_out, cost_usd, callback_url, callback_state,"
    " callback_attempts"
)

EVENT_COLUMNS = "id, task_id::text AS task_id, at, kind, status, attempt, worker_id, detail"


def transition_sql(update: str, kind: str, kind_is_sql: bool = False) -> str:
    """Wrap an ``UPDATE tasks ...`` (no ``RETURNING``) so the same statement appends a task
    event. One round trip per state transition.

    Parameters ``%(worker_id)s`` and ``%(detail)s`` feed the event row. ``kind`` is the event
    name, or a SQL expression over the updated row when ``kind_is_sql``.
    """
    return _with_event(f"{update} RETURNING *", kind if kind_is_sql else f"'{kind}'",
                       "%(detail)s")


def unnest_inputs(inputs: dict[str, str]) -> str:
    """``unnest(...) AS i(...)``: one row per task from one array parameter per input
    (name -> SQL type of its elements)."""
    columns = ", ".join(inputs)
    arrays = ", ".join(f"%({name})s::{sql_type}[]" for name, sql_type in inputs.items())
    return f"unnest({arrays}) AS i({columns})"


def batch_transition_sql(set_clause: str, condition: str, kind: str, inputs: dict[str, str],
                         detail: str = "'{}'::jsonb", also: str = "") -> str:
    """``transition_sql`` for many tasks in one statement.

    Each parameter named in ``inputs`` (name -> SQL type) is an array with one element per
    task; together they are unnested as rows of ``i``, which must include ``id``.
    ``set_clause`` and ``condition`` refer to the row as ``tasks`` and to its input as ``i``;
    ``detail`` is the event detail as a SQL expression over ``i``. ``also``: one more
    data-modifying CTE of the same statement, over the updated rows as ``t``.
    """
    update = (
        f"UPDATE tasks SET {set_clause} FROM {unnest_inputs(inputs)}"
        f" WHERE tasks.id = i.id AND ({condition}) RETURNING tasks.*, {detail} AS event_detail"
    )
    return _with_event(update, f"'{kind}'", "event_detail", also)


def _with_event(update_returning: str, kind_expr: str, detail_expr: str, also: str = "") -> str:
    return (
        f"WITH t AS ({update_returning}),"
        " e AS (INSERT INTO task_events (task_id, kind, status, attempt, worker_id, detail)"
        f" SELECT id, {kind_expr}, status, attempts, %(worker_id)s, {detail_expr} FROM t)"
        + (f", {also}" if also else "")
        + f" SELECT {TASK_COLUMNS}, run_id::text AS run_id, traceparent FROM t"
    )


def to_task(row: dict[str, Any]) -> Task:
    return msgspec.convert(row, Task)


def to_event(row: dict[str, Any]) -> TaskEvent:
    return msgspec.convert(row, TaskEvent)


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value)
