"""Recurring schedules in PostgreSQL: created, listed, paused, deleted, and the due ones locked
for one scheduler pass at a time each (``FOR UPDATE SKIP LOCKED``), their tasks created in the
pass's transaction with one ``schedule_fires`` row per due time (a second is refused)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, errors

from service.db.query import Row, Store, execute
from service.db.rows import TASK_COLUMNS, jsonb, to_task
from service.domain import Task, TaskFields, json_text
from service.errors import ScheduleExists, ScheduleNotFound


@dataclass(frozen=True)
class NewSchedule:
    """A validated schedule, ready to store."""

    tenant: str
    name: str
    cron: str
    timezone: str
    missed: str
    task: TaskFields
    """What each of its tasks is created with."""
    created_by: str | None
    next_due_at: datetime
    concurrency_key: str | None = None


COLUMNS = (
    "id, tenant, name, cron, timezone, missed, agent, input, priority, max_attempts, timeout_s,"
    " concurrency_key, paused, next_due_at, last_due_at, last_fired_at,"
    " last_task_id::text AS last_task_id, fired, skipped, created_at, created_by"
)
_INSERT = (
    "INSERT INTO schedules (tenant, name, cron, timezone, missed, agent, input, input_checksum,"
    " priority, max_attempts, timeout_s, created_by, next_due_at, concurrency_key)"
    " VALUES (%(tenant)s, %(name)s, %(cron)s, %(timezone)s, %(missed)s, %(agent)s, %(input)s,"
    " %(checksum)s, %(priority)s, %(max_attempts)s, %(timeout_s)s, %(created_by)s,"
    f" %(next_due_at)s, %(concurrency_key)s) RETURNING {COLUMNS}"
)
_VISIBLE = "(%(tenant)s::text IS NULL OR tenant = %(tenant)s)"
_LIST = f"SELECT {COLUMNS} FROM schedules WHERE {_VISIBLE} ORDER BY tenant, name"
_ONE = f"SELECT {COLUMNS} FROM schedules WHERE tenant = %(tenant)s AND name = %(name)s"
_SET_PAUSED = (
    "UPDATE schedules SET paused = %(paused)s,"
    " next_due_at = coalesce(%(next_due_at)s, next_due_at)"
    f" WHERE tenant = %(tenant)s AND name = %(name)s RETURNING {COLUMNS}"
)
_DELETE = "DELETE FROM schedules WHERE tenant = %(tenant)s AND name = %(name)s"
_DUE = (
    f"SELECT {COLUMNS}, clock_timestamp() AS now FROM schedules"
    " WHERE NOT paused AND next_due_at <= clock_timestamp()"
    " ORDER BY next_due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED"
)
_FIRE = (
    "WITH f AS (INSERT INTO schedule_fires (schedule_id, due_at, task_id)"
    " VALUES (%(schedule_id)s, %(due_at)s, %(task_id)s) ON CONFLICT DO NOTHING"
    " RETURNING task_id),"
    " t AS (INSERT INTO tasks (id, agent, tenant, input, status, priority, max_attempts,"
    " timeout_s, input_checksum, concurrency_key)"
    " SELECT f.task_id, s.agent, s.tenant, s.input, 'queued', s.priority, s.max_attempts,"
    " s.timeout_s, s.input_checksum, s.concurrency_key FROM f, schedules s"
    " WHERE s.id = %(schedule_id)s"
    " RETURNING *),"
    " e AS (INSERT INTO task_events (task_id, kind, status, attempt, detail)"
    " SELECT id, 'submitted', status, attempts, %(detail)s FROM t)"
    f" SELECT {TASK_COLUMNS} FROM t"
)
_ADVANCE = (
    "UPDATE schedules SET next_due_at = %(next_due_at)s, fired = fired + %(fired)s,"
    " skipped = skipped + %(skipped)s, last_due_at = coalesce(%(last_due_at)s, last_due_at),"
    " last_fired_at = CASE WHEN %(fired)s > 0 THEN now() ELSE last_fired_at END,"
    " last_task_id = coalesce(%(last_task_id)s::uuid, last_task_id) WHERE id = %(id)s"
)
_OVERDUE = (
    "SELECT count(*) AS active, coalesce(extract(epoch FROM now() - min(next_due_at)"
    " FILTER (WHERE next_due_at < now())), 0) AS overdue_s FROM schedules WHERE NOT paused"
)
_FORGET_FIRES = (
    "DELETE FROM schedule_fires WHERE ctid = ANY(ARRAY(SELECT ctid FROM schedule_fires"
    " WHERE fired_at < now() - make_interval(secs => %(age_s)s) LIMIT %(batch)s))"
)


class DueBatch:
    """The due schedules one pass holds locked, and the two writes it makes per schedule."""

    def __init__(self, conn: AsyncConnection[Any], schedules: list[Row]) -> None:
        self._conn = conn
        self.schedules = schedules

    async def fire(self, schedule: Row, due_at: datetime) -> Task | None:
        """Create the task of ``due_at``; ``None`` when that due time has fired before."""
        cur = await execute(self._conn, "schedule_fire", _FIRE, {
            "schedule_id": schedule["id"], "due_at": due_at, "task_id": uuid.uuid4(),
            "detail": jsonb({"schedule": schedule["name"], "due_at": due_at.isoformat()})})
        row = await cur.fetchone()
        return to_task(row) if row is not None else None

    async def advance(self, schedule: Row, next_due_at: datetime, fired: list[Task],
                      due: list[datetime], skipped: int) -> None:
        await execute(self._conn, "schedule_advance", _ADVANCE, {
            "id": schedule["id"], "next_due_at": next_due_at, "fired": len(fired),
            "skipped": skipped, "last_due_at": due[-1] if due else None,
            "last_task_id": fired[-1].id if fired else None})


class ScheduleStore(Store):
    """Schedules of one deployment; each name is unique within its tenant."""

    async def create(self, new: NewSchedule) -> Row:
        params = {**new.__dict__, **new.task.__dict__, "input": json_text(new.task.input)}
        try:
            row = await self.fetch_one("schedule_create", _INSERT, params)
        except errors.UniqueViolation:
            raise ScheduleExists(new.name) from None
        assert row is not None
        return row

    async def list(self, tenant: str | None) -> list[Row]:
        """The schedules ``tenant`` may see (``None``: every tenant's)."""
        return await self.fetch_all("schedule_list", _LIST, {"tenant": tenant})

    async def get(self, tenant: str, name: str) -> Row:
        row = await self.fetch_one("schedule_get", _ONE, {"tenant": tenant, "name": name})
        if row is None:
            raise ScheduleNotFound(name)
        return row

    async def set_paused(self, tenant: str, name: str, paused: bool,
                         next_due_at: datetime | None = None) -> Row:
        """Pause, or resume from ``next_due_at`` (the due times of the pause do not fire)."""
        row = await self.fetch_one("schedule_pause", _SET_PAUSED, {
            "tenant": tenant, "name": name, "paused": paused, "next_due_at": next_due_at})
        if row is None:
            raise ScheduleNotFound(name)
        return row

    async def delete(self, tenant: str, name: str) -> None:
        async with self.pool.connection() as conn:
            if (await execute(conn, "schedule_delete", _DELETE,
                              {"tenant": tenant, "name": name})).rowcount == 0:
                raise ScheduleNotFound(name)

    @asynccontextmanager
    async def due(self, limit: int) -> AsyncIterator[DueBatch]:
        """Lock up to ``limit`` due schedules for the block (one transaction); each row has
        the database's ``now``."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await execute(conn, "schedule_due", _DUE, {"limit": limit})
            yield DueBatch(conn, await cur.fetchall())

    async def overdue(self) -> tuple[int, float]:
        """``(active schedules, seconds the most overdue one is late)``."""
        row = await self.fetch_one("schedule_overdue", _OVERDUE)
        assert row is not None
        return int(row["active"]), float(row["overdue_s"])

    async def forget_fires(self, age_s: float, batch: int = 1000) -> int:
        """Delete the record of fires older than ``age_s`` (due times long passed)."""
        return await self.delete_in_batches("schedule_forget_fires", _FORGET_FIRES,
                                            {"age_s": age_s}, batch)
