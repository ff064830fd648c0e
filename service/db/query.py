"""Running SQL: every statement goes through here, timed by operation name."""

from __future__ import annotations

import time
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow

from service.db.pool import Pool
from service.telemetry import metrics

_timers: dict[str, Any] = {}


async def execute(conn: AsyncConnection[DictRow], operation: str, sql: str | bytes,
                  params: Any = None) -> AsyncCursor[DictRow]:
    """Execute on ``conn`` and record ``db_query_duration_seconds{operation}``."""
    started = time.perf_counter()
    try:
        return await conn.execute(sql.encode() if isinstance(sql, str) else sql, params)
    finally:
        timer = _timers.get(operation)
        if timer is None:
            timer = _timers[operation] = metrics.DB_QUERY_DURATION.labels(operation)
        timer.observe(time.perf_counter() - started)


class Store:
    """Base of the stores: one pooled connection per call, every call timed."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def fetch_one(self, operation: str, sql: str | bytes,
                        params: Any = None) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            cur = await execute(conn, operation, sql, params)
            return await cur.fetchone()

    async def fetch_all(self, operation: str, sql: str | bytes,
                        params: Any = None) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = await execute(conn, operation, sql, params)
            return await cur.fetchall()

    async def run(self, operation: str, sql: str | bytes, params: Any = None) -> None:
        async with self.pool.connection() as conn:
            await execute(conn, operation, sql, params)
