"""The transactional outbox: tasks whose message is committed in PostgreSQL but not yet confirmed
by the broker (``published_at IS NULL``); claimed highest priority first, then oldest first."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from service.broker.topology import LONGEST_DELAY_S
from service.db.pool import Pool
from service.db.query import Store, execute
from service.db.rows import jsonb
from service.domain import TaskStatus


@dataclass(frozen=True)
class PendingMessage:
    """One message the relay must publish, derived from the task's current state."""

    task_id: str
    agent: str
    status: TaskStatus
    priority: int
    attempts: int
    concurrency_key: str | None
    traceparent: str | None
    available_at: datetime
    now: datetime

    @property
    def delay_s(self) -> float:
        return max(0.0, (self.available_at - self.now).total_seconds())


PUBLISH_AHEAD_S = LONGEST_DELAY_S
"""A task due later than this waits in the outbox; sooner, it is published to a delay queue."""
_IN_REACH = f"available_at < now() + make_interval(secs => {PUBLISH_AHEAD_S})"
_CLAIM = (
    "SELECT id::text AS task_id, agent, status, priority, attempts, concurrency_key,"
    " traceparent, available_at,"
    f" clock_timestamp() AS now FROM tasks WHERE published_at IS NULL AND {_IN_REACH}"
    " AND (status <> 'queued' OR created_at < now() - make_interval(secs => %s))"
    " ORDER BY priority DESC, created_at LIMIT %s FOR UPDATE SKIP LOCKED"
)
_MARK = (
    "WITH t AS (UPDATE tasks SET published_at = now()"
    " FROM unnest(%(ids)s::uuid[], %(details)s::jsonb[]) AS p(id, detail)"
    " WHERE tasks.id = p.id RETURNING tasks.id, tasks.status, tasks.attempts, p.detail)"
    " INSERT INTO task_events (task_id, kind, status, attempt, worker_id, detail)"
    " SELECT id, 'published', status, attempts, %(actor)s, detail FROM t"
)
_BACKLOG = (  # a scheduled task joins the backlog once it is in reach
    "SELECT count(*) AS unpublished, coalesce(extract(epoch FROM now() - min(greatest("
    f"created_at, available_at - make_interval(secs => {PUBLISH_AHEAD_S})))), 0) AS oldest_age_s"
    f" FROM tasks WHERE published_at IS NULL AND {_IN_REACH}"
)


class OutboxBatch:
    """A locked batch of pending messages; ``mark_published`` records the confirmed ones."""

    def __init__(self, conn: AsyncConnection[Any], messages: list[PendingMessage],
                 actor: str) -> None:
        self._conn = conn
        self.messages = messages
        self._actor = actor

    async def mark_published(self, done: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Mark ``(task_id, event detail)`` pairs as published, with a ``published`` event each."""
        if not done:
            return
        await execute(self._conn, "outbox_mark", _MARK, {
            "ids": [task_id for task_id, _ in done],
            "details": [jsonb(detail) for _, detail in done],
            "actor": self._actor,
        })


class OutboxStore(Store):
    """Batches of unpublished tasks, locked with ``SKIP LOCKED`` so relays never collide."""

    def __init__(self, pool: Pool, actor: str, new_tasks_after_s: float = 0.0) -> None:
        """``new_tasks_after_s``: leave freshly submitted tasks this long to the API's own
        relays (agents publish retries and dead letters at once, and take over submissions
        only when they wait that long, e.g. because their API process died)."""
        super().__init__(pool)
        self.actor = actor
        self.new_tasks_after_s = new_tasks_after_s

    @asynccontextmanager
    async def batch(self, limit: int) -> AsyncIterator[OutboxBatch]:
        """Lock up to ``limit`` pending rows for the duration of the block (one transaction)."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await execute(conn, "outbox_claim", _CLAIM, (self.new_tasks_after_s, limit))
            rows = await cur.fetchall()
            messages = [PendingMessage(**{**row, "status": TaskStatus(row["status"])})
                        for row in rows]
            yield OutboxBatch(conn, messages, self.actor)

    async def backlog(self) -> tuple[int, float]:
        """``(unpublished task count, age in seconds of the oldest)``, of the tasks in reach
        (a task scheduled further ahead is not late)."""
        row = await self.fetch_one("outbox_backlog", _BACKLOG)
        assert row is not None
        return int(row["unpublished"]), float(row["oldest_age_s"])
