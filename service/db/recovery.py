"""Task store, reconciler side: find tasks whose message the broker no longer holds, and record
what the broker dead-lettered on its own.

A published task that waits (``queued``, or ``retrying`` and due) has exactly one message in its
agent queue or in a worker's prefetch. When there are fewer such messages than such tasks, some
were lost (a purged queue, a broker that lost its data); the reconciler gives those tasks back to
the outbox (``published_at = NULL``), which publishes them again. A second message for a task
whose first one was not lost after all is harmless: claims are idempotent and fenced by run id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection

from service.db.pool import Pool
from service.db.query import Store, execute
from service.db.rows import jsonb, to_task, transition_sql
from service.domain import Task

RECONCILER_LOCK = 7_326_113_901
"""The advisory lock one reconciler pass holds, so many processes run one pass at a time."""

_WAITING = (  # a task due later (a retry, run_at) has its message in a delay queue
    "(status = 'queued' AND published_at IS NOT NULL AND published_at < %(before)s"
    " AND available_at < %(before)s)"
    " OR (status = 'retrying' AND published_at IS NOT NULL AND available_at < %(before)s)"
)
_WAITING_BY_AGENT = f"SELECT agent, count(*) AS n FROM tasks WHERE {_WAITING} GROUP BY agent"
_STALE = (
    "SELECT id::text AS id FROM tasks WHERE agent = %(agent)s AND ("
    " (status = 'queued' AND published_at < now() - make_interval(secs => %(after_s)s)"
    " AND available_at < now() - make_interval(secs => %(after_s)s))"
    " OR (status = 'retrying' AND published_at IS NOT NULL"
    " AND available_at < now() - make_interval(secs => %(after_s)s)))"
    " ORDER BY published_at DESC LIMIT %(limit)s"
)
_REPUBLISH = (
    "WITH t AS (UPDATE tasks SET published_at = NULL, updated_at = now()"
    " WHERE id = ANY(%(ids)s::uuid[]) AND status IN ('queued', 'retrying')"
    " AND published_at IS NOT NULL RETURNING id, status, attempts)"
    " INSERT INTO task_events (task_id, kind, status, attempt, worker_id, detail)"
    " SELECT id, 'republished', status, attempts, %(actor)s, %(detail)s FROM t"
    " RETURNING task_id::text AS id"
)
# The broker dead-lettered the task's message (delivery limit, rejected): the message already
# sits in the dead-letter queue, so the task is marked published there and goes dead now.
_DEAD_BY_BROKER = transition_sql(
    "UPDATE tasks SET status = 'dead', error = %(error)s, published_at = now(),"
    " finished_at = now(), version = tasks.version + 1, updated_at = now()"
    " WHERE id = %(id)s AND status IN ('queued', 'retrying', 'running')",
    "dead_lettered",
)


class RecoveryStore(Store):
    """What the reconciler reads and the two repairs it makes."""

    def __init__(self, pool: Pool, actor: str) -> None:
        super().__init__(pool)
        self.actor = actor

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[AsyncConnection[Any] | None]:
        """A connection holding the reconciler's lock for one transaction, or ``None`` when
        another process holds it."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await execute(conn, "reconcile_lock",
                                "SELECT pg_try_advisory_xact_lock(%s) AS got", (RECONCILER_LOCK,))
            row = await cur.fetchone()
            yield conn if row is not None and row["got"] else None

    @staticmethod
    async def pass_start(conn: AsyncConnection[Any]) -> Any:
        """The pass's reference time: two seconds before its transaction began, so a task
        published while the broker is being read is not counted against messages not seen."""
        cur = await execute(conn, "reconcile_start",
                            "SELECT now() - interval '2 seconds' AS at")
        row = await cur.fetchone()
        assert row is not None
        return row["at"]

    @staticmethod
    async def waiting_by_agent(conn: AsyncConnection[Any], before: Any) -> dict[str, int]:
        """Per agent: published tasks that wait to start and were published (or became due)
        before ``before``: each should have a message in the broker."""
        cur = await execute(conn, "reconcile_waiting", _WAITING_BY_AGENT, {"before": before})
        return {row["agent"]: int(row["n"]) for row in await cur.fetchall()}

    @staticmethod
    async def stale(conn: AsyncConnection[Any], agent: str, after_s: float,
                    limit: int) -> list[str]:
        """Up to ``limit`` waiting tasks of ``agent`` published over ``after_s`` ago, newest
        first (the oldest are the likeliest to sit in a busy worker's prefetch)."""
        cur = await execute(conn, "reconcile_stale", _STALE,
                            {"agent": agent, "after_s": after_s, "limit": limit})
        return [row["id"] for row in await cur.fetchall()]

    async def republish(self, conn: AsyncConnection[Any], task_ids: list[str],
                        reason: str) -> list[str]:
        """Give these tasks back to the outbox, with a ``republished`` event each."""
        if not task_ids:
            return []
        cur = await execute(conn, "reconcile_republish", _REPUBLISH, {
            "ids": task_ids, "actor": self.actor, "detail": jsonb({"reason": reason})})
        return [row["id"] for row in await cur.fetchall()]

    async def dead_by_broker(self, task_id: str, error: str,
                             detail: dict[str, Any]) -> Task | None:
        """Mark a task ``dead`` whose message the broker dead-lettered; ``None`` when the task
        had already ended (or does not exist)."""
        row = await self.fetch_one("reconcile_dead_by_broker", _DEAD_BY_BROKER, {
            "id": task_id, "error": error, "worker_id": self.actor,
            "detail": jsonb({"error": error, **detail})})
        return to_task(row) if row is not None else None
