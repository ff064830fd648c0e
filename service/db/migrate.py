"""Versioned SQL migrations: ``migrations/NNNN_name.sql`` applied in order, once each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from service.db.pool import Pool, ensure_database, open_pool
from service.settings import DatabaseSettings

_LOCK_ID = 7_310_451_001  # advisory lock: one migrator at a time across processes


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration shipped with the package, oldest first."""
    folder = resources.files("service.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


async def migrate(pool: Pool) -> list[Migration]:
    """Apply the migrations not yet applied; return those applied now."""
    async with pool.connection() as conn:
        return await _migrate(conn)


@asynccontextmanager
async def migrated_pool(database: DatabaseSettings, name: str) -> AsyncIterator[Pool]:
    """A pool on the configured database, created and migrated first (for short commands)."""
    await ensure_database(database)
    pool = await open_pool(database, name=name)
    try:
        await migrate(pool)
        yield pool
    finally:
        await pool.close()


async def _migrate(conn: AsyncConnection[DictRow]) -> list[Migration]:
    applied_now = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {row["version"] for row in await cur.fetchall()}
        for migration in available_migrations():
            if migration.version in done:
                continue
            await conn.execute(migration.sql.encode())
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            applied_now.append(migration)
    return applied_now
