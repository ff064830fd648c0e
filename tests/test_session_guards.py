"""A process cut off mid-transaction cannot hold its rows: PostgreSQL ends a session idle in a
transaction after ``ORCH_DB_IDLE_IN_TRANSACTION_TIMEOUT_S``, and its locks go with it."""

from __future__ import annotations

import asyncio
import dataclasses

import psycopg
import pytest
from psycopg import conninfo

from service.db.pool import open_pool
from tests.services import Env

pytestmark = pytest.mark.integration


async def test_a_transaction_left_open_is_ended_and_its_locks_freed(env: Env) -> None:
    # Given a pool whose sessions may sit 1 s inside a transaction, on a URL with options of its own
    url = conninfo.make_conninfo(env.settings.database.url, options="-c statement_timeout=4321")
    database = dataclasses.replace(env.settings.database, url=url,
                                   idle_in_transaction_timeout_s=1.0, pool_min=1, pool_max=2)
    pool = await open_pool(database, name="test-session-guards")
    try:
        async with pool.connection() as conn:
            # the URL's own options are kept beside the guard
            assert (await (await conn.execute("SHOW statement_timeout")).fetchone() or {}
                    ).get("statement_timeout") == "4321ms"
        async with pool.connection() as holder:
            await holder.execute("BEGIN")
            await holder.execute("SELECT pg_advisory_xact_lock(724911)")
            # When the holder goes silent inside its transaction
            await asyncio.sleep(2.5)
            # Then another session takes the lock at once: the server ended the holder's session
            with psycopg.connect(env.settings.database.url, autocommit=True) as other:
                other.execute("SET lock_timeout = '1s'")
                assert other.execute("SELECT pg_try_advisory_lock(724911)").fetchone() == (True,)
                other.execute("SELECT pg_advisory_unlock(724911)")
            # and the holder learns it on its next statement
            with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
                await holder.execute("SELECT 1")
    finally:
        await pool.close()
