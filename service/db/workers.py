"""The worker registry in PostgreSQL: the fallback view of live agents when Redis is down."""

from __future__ import annotations

from typing import Any

from service.db.pool import Pool

_UPSERT = (
    "INSERT INTO workers (worker_id, agents, hostname, pid, concurrency, in_flight, last_seen)"
    " VALUES (%(worker_id)s, %(agents)s, %(hostname)s, %(pid)s, %(concurrency)s,"
    " %(in_flight)s, now())"
    " ON CONFLICT (worker_id) DO UPDATE SET in_flight = EXCLUDED.in_flight,"
    " agents = EXCLUDED.agents, last_seen = now()"
)
_LIVE = (
    "SELECT worker_id, agents, hostname, pid, concurrency, in_flight, started_at, last_seen"
    " FROM workers WHERE last_seen > now() - make_interval(secs => %s) ORDER BY worker_id"
)


class WorkerRegistry:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def beat(self, beat: dict[str, Any]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(_UPSERT, beat)

    async def remove(self, worker_id: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("DELETE FROM workers WHERE worker_id = %s", (worker_id,))

    async def live(self, ttl_s: float) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_LIVE, (ttl_s,))
            return [dict(row) for row in await cur.fetchall()]
