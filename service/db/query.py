"""Running SQL: every statement goes through here, timed by operation name."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow

from catalog import metrics
from service.db.batching import Batcher
from service.db.pool import Pool

_timers: dict[str, Any] = {}

Row = dict[str, Any]

ROW_ERRORS = (psycopg.DataError, psycopg.IntegrityError)
"""Errors caused by the values of one row (a ``\\u0000`` in JSON, a violated check): in a
batched statement they are isolated to the request that caused them."""


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

    async def delete_in_batches(self, operation: str, sql: str, params: dict[str, Any],
                                batch: int, pause_s: float = 0.0,
                                on_batch: Callable[[int], None] | None = None) -> int:
        """Run ``sql`` (a ``DELETE`` of at most ``%(batch)s`` rows) until it deletes fewer,
        each batch its own short transaction, ``pause_s`` apart; how many rows went."""
        total = 0
        while True:
            async with self.pool.connection() as conn:
                deleted = (await execute(conn, operation, sql,
                                         {**params, "batch": batch})).rowcount
            total += deleted
            if on_batch is not None:
                on_batch(deleted)
            if deleted < batch:
                return total
            await asyncio.sleep(pause_s)

    async def run(self, operation: str, sql: str | bytes, params: Any = None) -> None:
        async with self.pool.connection() as conn:
            await execute(conn, operation, sql, params)

    def batcher(self, operation: str, sql: str, inputs: dict[str, str], key: str,
                **params: Any) -> Batcher[tuple[Any, ...], Row | None]:
        """Group commit for ``sql``, a statement over ``unnest_inputs(inputs)``.

        Each request is a tuple in the order of ``inputs``; it gets the returned row whose
        ``key`` column equals its own ``key`` input, or ``None`` when the statement returned none
        for it. ``params`` are the same for every request.
        """
        async def run_batch(requests: list[tuple[Any, ...]]) -> list[Row | None]:
            arrays = {name: list(column)
                      for name, column in zip(inputs, zip(*requests, strict=True), strict=True)}
            rows = await self.fetch_all(operation, sql, {**arrays, **params})
            by_key = {str(row[key]): row for row in rows}
            return [by_key.get(str(value)) for value in arrays[key]]

        return Batcher(run_batch, isolate=ROW_ERRORS)
