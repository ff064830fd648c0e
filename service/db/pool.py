"""One psycopg ``AsyncConnectionPool`` per process, sized from settings."""

from __future__ import annotations

import re

import psycopg
from psycopg import AsyncConnection, conninfo, sql
from psycopg.rows import DictRow, TupleRow, dict_row
from psycopg_pool import AsyncConnectionPool

from service.errors import (
    DependencyLoginRefused,
    DependencyResourceMissing,
    DependencyUnavailable,
    one_line,
)
from service.reachability import not_answering, redact, unreachable_reason
from service.settings import DatabaseSettings

__all__ = ["POSTGRES_HINT", "Pool", "ensure_database", "open_pool", "postgres_error", "redact",
           "session_guards"]

POSTGRES_HINT = (
    "Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)
DATABASE_VARIABLE = "ORCH_DATABASE_URL"
POSTGRES_PORT = 5432
CONNECT_TIMEOUT_S = 5


Pool = AsyncConnectionPool[AsyncConnection[DictRow]]
"""The pool type every store takes: autocommit connections returning dict rows."""


async def open_pool(database: DatabaseSettings, name: str = "orchestrator") -> Pool:
    """Open the pool and prove one connection works, or raise ``DependencyUnavailable``."""
    pool: Pool = AsyncConnectionPool(
        database.url,
        connection_class=AsyncConnection[DictRow],
        min_size=database.pool_min,
        max_size=database.pool_max,
        timeout=database.pool_timeout_s,
        kwargs={"autocommit": True, "row_factory": dict_row, "application_name": name,
                **session_guards(database)},
        name=name,
        open=False,
    )
    try:
        await pool.open(wait=True, timeout=database.pool_timeout_s)
    except Exception as exc:
        await pool.close()
        raise await _pool_error(database, exc) from exc
    return pool


def session_guards(database: DatabaseSettings) -> dict[str, str | int]:
    """Connection parameters that free what a vanished process held: PostgreSQL ends a session
    idle inside a transaction, TCP keepalives end a connection to a peer that is gone. Options
    the URL already sets are kept."""
    guards: dict[str, str | int] = {}
    if database.keepalive_idle_s > 0:
        guards.update(keepalives=1, keepalives_idle=database.keepalive_idle_s,
                      keepalives_interval=max(1, database.keepalive_idle_s // 2),
                      keepalives_count=3)
    if database.idle_in_transaction_timeout_s > 0:
        given = str(conninfo.conninfo_to_dict(database.url).get("options") or "")
        timeout_ms = int(database.idle_in_transaction_timeout_s * 1000)
        guards["options"] = " ".join(
            part for part in (given, f"-c idle_in_transaction_session_timeout={timeout_ms}")
            if part)
    return guards


async def _pool_error(database: DatabaseSettings, exc: BaseException) -> DependencyUnavailable:
    """Why the pool did not open: its timeout hides the cause, so one plain connection tells."""
    try:
        conn = await psycopg.AsyncConnection.connect(database.url,
                                                     connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as direct:
        return await postgres_error(database.url, direct)
    await conn.close()
    return DependencyUnavailable("PostgreSQL", redact(database.url),
                                 f"check {DATABASE_VARIABLE} and the server's log", _root(exc))


async def ensure_database(database: DatabaseSettings) -> None:
    """Create the configured database when the server runs but the database does not exist."""
    info = conninfo.conninfo_to_dict(database.url)
    dbname = str(info.get("dbname") or "")
    admin = conninfo.make_conninfo(database.url, dbname="postgres")
    try:
        conn = await psycopg.AsyncConnection.connect(admin, autocommit=True,
                                                     connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        raise await postgres_error(database.url, exc) from exc
    async with conn:
        if await _database_exists(conn, dbname):
            return
        try:
            await conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        except psycopg.Error as exc:
            if await _database_exists(conn, dbname):  # another process created it meanwhile
                return
            raise DependencyResourceMissing(
                "PostgreSQL", redact(database.url), "database", dbname,
                f"create it with a role that may (createdb {dbname}) or fix {DATABASE_VARIABLE}",
                note=f" (and it could not be created: {one_line(exc)})", cause=exc,
            ) from exc


async def _database_exists(conn: AsyncConnection[TupleRow], dbname: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
    return await cur.fetchone() is not None


# --- telling "not answering" from "refused the login" from "no such database" -------------

_PG_LOGIN_STATES = {"28P01", "28000"}  # invalid_password, invalid_authorization_specification
_PG_LOGIN_WORDS = re.compile(
    r'password authentication failed|role ".*" does not exist|no pg_hba\.conf entry'
    r"|authentication failed|password is required|no password supplied", re.IGNORECASE)
_PG_MISSING_DATABASE = re.compile(r'database "(.*?)" does not exist')
_PG_UNREACHABLE = [  # libpq says these in words only (no SQLSTATE without a server)
    (re.compile(r"connection refused", re.IGNORECASE), "connection refused"),
    (re.compile(r"timeout expired|timed out", re.IGNORECASE), "timed out"),
    (re.compile(r"failed to resolve host|could not translate host name"), "unknown host"),
    (re.compile(r"No route to host|Network is unreachable"), "host unreachable"),
    (re.compile(r"No such file or directory"), "no server socket"),
]


def _server_words(exc: BaseException) -> str:
    """What the server said, without libpq's "connection to server at ... failed:" preamble."""
    text = str(exc)
    fatal = text.rfind("FATAL:")
    text = text[fatal + len("FATAL:"):] if fatal >= 0 else text.rpartition("failed: ")[2]
    return one_line(text)


def _pg_address(url: str) -> tuple[str | None, int]:
    """The first host and port ``url`` names (host None: libpq's default socket)."""
    try:
        info = conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return None, POSTGRES_PORT
    host = str(info.get("host") or info.get("hostaddr") or "").split(",")[0] or None
    port = str(info.get("port") or "").split(",")[0]
    return host, int(port) if port.isdigit() else POSTGRES_PORT


async def postgres_error(url: str, exc: BaseException) -> DependencyUnavailable:
    """The one error to raise for ``exc``, a failed connection to the server ``url`` names."""
    shown, text = redact(url), str(exc)
    state = getattr(exc, "sqlstate", None)
    if state in _PG_LOGIN_STATES or _PG_LOGIN_WORDS.search(text):
        return DependencyLoginRefused("PostgreSQL", shown, _server_words(exc), DATABASE_VARIABLE,
                                      exc)
    missing = _PG_MISSING_DATABASE.search(text)
    if state == "3D000" or missing:
        dbname = missing.group(1) if missing else str(conninfo.conninfo_to_dict(url).get(
            "dbname") or "")
        return DependencyResourceMissing(
            "PostgreSQL", shown, "database", dbname,
            f"create it (createdb {dbname}) or fix {DATABASE_VARIABLE}", cause=exc)
    reason = unreachable_reason(exc) or next(
        (words for pattern, words in _PG_UNREACHABLE if pattern.search(text)), None)
    if reason is not None:
        host, port = _pg_address(url)
        return await not_answering("PostgreSQL", url, reason, host=host, port=port,
                                   default_port=POSTGRES_PORT, variable=DATABASE_VARIABLE,
                                   start_hint=POSTGRES_HINT, cause=exc)
    return DependencyUnavailable("PostgreSQL", shown,
                                 f"check {DATABASE_VARIABLE} and the server's log", exc)


def _root(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc
