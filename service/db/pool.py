"""One psycopg ``AsyncConnectionPool`` per process, sized from settings."""

from __future__ import annotations

import psycopg
from psycopg import AsyncConnection, conninfo, sql
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from service.errors import DependencyUnavailable
from service.settings import Settings

POSTGRES_HINT = (
    "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)


Pool = AsyncConnectionPool[AsyncConnection[DictRow]]
"""The pool type every store takes: autocommit connections returning dict rows."""


def redact(url: str) -> str:
    """The URL without its password, safe to print or log."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


async def open_pool(settings: Settings, name: str = "orchestrator") -> Pool:
    """Open the pool and prove one connection works, or raise ``DependencyUnavailable``."""
    pool: Pool = AsyncConnectionPool(
        settings.database_url,
        connection_class=AsyncConnection[DictRow],
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        timeout=settings.db_pool_timeout_s,
        kwargs={"autocommit": True, "row_factory": dict_row, "application_name": name},
        name=name,
        open=False,
    )
    try:
        await pool.open(wait=True, timeout=settings.db_pool_timeout_s)
    except Exception as exc:
        await pool.close()
        raise DependencyUnavailable(
            "PostgreSQL", redact(settings.database_url), POSTGRES_HINT, _root(exc)
        ) from exc
    return pool


async def ensure_database(settings: Settings) -> None:
    """Create the configured database when the server runs but the database does not exist."""
    info = conninfo.conninfo_to_dict(settings.database_url)
    dbname = str(info.get("dbname") or "")
    admin = conninfo.make_conninfo(settings.database_url, dbname="postgres")
    try:
        conn = await psycopg.AsyncConnection.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise DependencyUnavailable(
            "PostgreSQL", redact(settings.database_url), POSTGRES_HINT, _root(exc)
        ) from exc
    async with conn:
        cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        if await cur.fetchone() is None:
            await conn.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname))
            )


def _root(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc
