"""Backups of the orchestrator's database: a consistent dump, its verified restore, and a real one.

- ``create_backup``: ``pg_dump -Fc`` of one exported snapshot, and next to it a manifest (time,
  applied migrations, row counts per table, SHA-256 of the dump) read in that same snapshot, so
  the counts are exactly what the dump holds.
- ``verify_backup``: ``pg_restore`` into a scratch database (created, always dropped), then the
  checks: the file matches the manifest's checksum, the migrations and row counts match it,
  every task's input matches its checksum (``domain.input_intact``, what a worker checks), and
  every task's latest event carries its status. The live database is compared too (for
  information only). A passing backup is recorded in the ``backups`` table: the newest
  verification is the ``orchestrator_backup_last_verified_*`` metrics and BackupNotVerified.
- ``restore_backup``: ``pg_restore --clean --if-exists`` in one transaction into the configured
  database; then no waiting or running task stays stranded (the broker's messages belong to
  another timeline): running ones go back to ``queued`` with an attempt to spare, and every
  waiting one is handed to the outbox (``published_at = NULL``), each with a ``restored``
  event; the Redis status cache, which would answer with the replaced rows, is emptied.

The ``backups`` table is the ledger of the dumps, not their content: dumps leave its rows out and
a restore keeps the live ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis.asyncio as aioredis
from psycopg import AsyncConnection, IsolationLevel, conninfo, sql
from psycopg.rows import DictRow, dict_row
from redis.exceptions import RedisError

from catalog.names import RedisKeys
from service.db.migrate import migrate, migrated_pool
from service.db.pool import ensure_database, open_pool, postgres_error
from service.db.query import Store
from service.db.rows import TASK_COLUMNS, jsonb, to_task
from service.domain import FINAL_STATUSES, input_intact
from service.errors import OrchestratorError, one_line
from service.settings import DatabaseSettings, RedisSettings

__all__ = ["BackupLedger", "BackupProblem", "Check", "Manifest", "Restored", "Verification",
           "create_backup", "manifest_path", "read_manifest", "restore_backup",
           "verify_backup"]

LEDGER = "backups"
"""The table that records the backups (its rows are never in a dump)."""
ACTOR = "backup-restore"
"""The ``worker_id`` of the events a restore writes."""
LOCK_TIMEOUT_MS = 30_000
"""A restore that waits this long for a table lock gives up (and changes nothing)."""
CHECKS = ("checksum", "restore", "schema", "row counts", "task inputs", "events")
_BATCH = 1000


class BackupProblem(OrchestratorError):
    """A backup cannot be written, read or restored as asked; the message says what to do."""


@dataclass(frozen=True)
class Manifest:
    """What ``backup create`` wrote next to a dump, read back by ``verify`` and ``restore``."""

    file: str
    database: str
    created_at: str
    """The snapshot's time (ISO 8601, UTC)."""
    schema_version: int
    migrations: list[str]
    row_counts: dict[str, int]
    sha256: str
    size_bytes: int
    duration_s: float
    """How long ``backup create`` took (snapshot, counts, dump and checksum)."""
    format: str = "pg_dump custom (-Fc)"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Verification:
    dump: Path
    manifest: Manifest
    checks: list[Check]
    live_differences: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    """Table -> (rows in the backup, rows live), for the tables whose counts differ."""
    live: str = ""
    """One sentence on the live database against the backup (informational)."""
    recorded: bool = False
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass(frozen=True)
class Restored:
    dump: Path
    manifest: Manifest
    requeued: dict[str, int]
    """Tasks handed back to the outbox, by the status they were restored in."""
    cache_cleared: int | None
    """Status-cache entries removed (``None``: Redis did not answer; they expire by TTL)."""
    migrations_applied: list[str]
    duration_s: float


def manifest_path(dump: Path) -> Path:
    return dump.with_suffix(".manifest.json")


def read_manifest(dump: Path) -> Manifest:
    if not dump.is_file():
        raise BackupProblem(f"{dump} does not exist (backup create prints the dump's path)")
    path = manifest_path(dump)
    try:
        return Manifest(**json.loads(path.read_text()))
    except FileNotFoundError:
        raise BackupProblem(f"{path} is missing: the manifest backup create wrote next to the"
                            " dump is needed to check it") from None
    except (ValueError, TypeError) as exc:
        raise BackupProblem(f"{path} is not a manifest of backup create: {exc}") from exc


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- create --------------------------------------------------------------------------------------

async def create_backup(database: DatabaseSettings, folder: Path) -> tuple[Path, Manifest]:
    """Dump the configured database into ``folder``; the manifest goes next to the dump."""
    started = time.monotonic()
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    name = _dbname(database.url)
    async with await _connect(database.url, autocommit=False) as conn:
        await conn.set_isolation_level(IsolationLevel.REPEATABLE_READ)
        await conn.set_read_only(True)
        row = await _one(conn, "SELECT pg_export_snapshot() AS snapshot, now() AS at")
        at: datetime = row["at"].astimezone(UTC)
        dump = folder / f"orchestrator-{name}-{at:%Y%m%dT%H%M%S}{at.microsecond // 1000:03d}Z.dump"
        partial = dump.with_name(dump.name + ".partial")
        migrations, counts = await _migrations(conn), await _row_counts(conn)
        try:
            await _tool("pg_dump", ["--format=custom", f"--snapshot={row['snapshot']}",
                                    f"--exclude-table-data=public.{LEDGER}",
                                    f"--file={partial}"], database.url)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        await conn.rollback()
    partial.rename(dump)
    manifest = Manifest(dump.name, name, at.isoformat(), _version(migrations), migrations, counts,
                        await asyncio.to_thread(sha256_of, dump), dump.stat().st_size,
                        round(time.monotonic() - started, 3))
    manifest_path(dump).write_text(json.dumps(manifest.as_json(), indent=2) + "\n")
    async with migrated_pool(database, "backup") as pool:
        await BackupLedger(pool).record(dump, manifest, verified=False)
    return dump, manifest


# --- verify --------------------------------------------------------------------------------------

async def verify_backup(database: DatabaseSettings, dump: Path) -> Verification:
    """Restore ``dump`` into a scratch database on the configured server and check it there."""
    started = time.monotonic()
    manifest = read_manifest(dump)
    digest = await asyncio.to_thread(sha256_of, dump)
    checks = [Check("checksum", digest == manifest.sha256,
                    f"sha256 {digest[:16]}… matches the manifest" if digest == manifest.sha256
                    else f"sha256 {digest[:16]}… but the manifest says {manifest.sha256[:16]}…:"
                         " the file changed or was damaged after backup create wrote it")]
    scratch = f"orch_verify_{uuid.uuid4().hex[:12]}"
    async with await _connect(conninfo.make_conninfo(database.url, dbname="postgres")) as admin:
        try:
            await admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                sql.Identifier(scratch)))
        except psycopg.Error as exc:
            raise BackupProblem(f"cannot create the scratch database {scratch} to restore into"
                                f" ({one_line(exc)}): verify needs a role that may create"
                                " databases on the configured server") from exc
        try:
            checks += await _restore_and_check(
                dump, conninfo.make_conninfo(database.url, dbname=scratch), scratch, manifest)
        finally:
            await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(scratch)))
    result = Verification(dump, manifest, checks)
    await _compare_live(database, manifest, result)
    if result.passed:
        async with migrated_pool(database, "backup") as pool:
            await BackupLedger(pool).record(dump, manifest, verified=True)
        result.recorded = True
    result.duration_s = round(time.monotonic() - started, 3)
    return result


async def _restore_and_check(dump: Path, url: str, scratch: str,
                             manifest: Manifest) -> list[Check]:
    started = time.monotonic()
    try:
        await _tool("pg_restore", ["--no-owner", "--exit-on-error", "--single-transaction",
                                   str(dump)], url)
    except BackupProblem as exc:
        return [Check("restore", False, str(exc)),
                *(Check(name, False, "not checked: the dump did not restore")
                  for name in CHECKS[2:])]
    checks = [Check("restore", True, f"restored into the scratch database {scratch} in"
                                     f" {time.monotonic() - started:.1f} s (dropped after)")]
    async with await _connect(url) as conn:
        for name, check in (("schema", _schema), ("row counts", _counts),
                            ("task inputs", _inputs), ("events", _events)):
            try:
                checks.append(await check(conn, manifest))
            except psycopg.Error as exc:
                checks.append(Check(name, False, f"could not check: {one_line(exc)}"))
    return checks


async def _schema(conn: AsyncConnection[DictRow], manifest: Manifest) -> Check:
    found = await _migrations(conn)
    if found == manifest.migrations:
        return Check("schema", True, f"schema version {_version(found)} ({len(found)}"
                                     " migrations), as the manifest says")
    return Check("schema", False, f"migrations {', '.join(found) or 'none'}; the manifest says"
                                  f" {', '.join(manifest.migrations) or 'none'}")


async def _counts(conn: AsyncConnection[DictRow], manifest: Manifest) -> Check:
    differences = _differences(manifest.row_counts, await _row_counts(conn))
    if not differences:
        return Check("row counts", True, f"{len(manifest.row_counts)} tables,"
                                         f" {sum(manifest.row_counts.values())} rows, as the"
                                         " manifest says")
    return Check("row counts", False, "restored rows differ from the manifest: "
                 + _shown(differences, "in the manifest", "restored"))


async def _inputs(conn: AsyncConnection[DictRow], manifest: Manifest) -> Check:
    total, broken, last = 0, [], str(uuid.UUID(int=0))
    while rows := await _all(conn, f"SELECT {TASK_COLUMNS} FROM tasks WHERE id > %s::uuid"
                                   f" ORDER BY id LIMIT {_BATCH}", (last,)):
        total += len(rows)
        broken += [row["id"] for row in rows if not input_intact(to_task(row))]
        last = rows[-1]["id"]
    if not broken:
        return Check("task inputs", True, f"{total} tasks, every input matches its checksum")
    return Check("task inputs", False, f"{len(broken)} of {total} tasks have an input that no"
                                       f" longer matches its checksum: {', '.join(broken[:5])}")


_INCONSISTENT = (
    "SELECT t.id::text AS id, t.status, t.finished_at, e.status AS event_status,"
    " count(*) OVER () AS n FROM tasks t LEFT JOIN LATERAL (SELECT status FROM task_events"
    " WHERE task_id = t.id ORDER BY id DESC LIMIT 1) e ON true"
    " WHERE e.status IS DISTINCT FROM t.status"
    " OR (t.status = ANY(%(final)s) AND t.finished_at IS NULL) ORDER BY t.id LIMIT 5"
)


async def _events(conn: AsyncConnection[DictRow], manifest: Manifest) -> Check:
    rows = await _all(conn, _INCONSISTENT, {"final": sorted(FINAL_STATUSES)})
    total = manifest.row_counts.get("tasks", 0)
    if not rows:
        return Check("events", True, f"{total} tasks: each one's latest event has its status,"
                                     " and each finished one its finished_at")
    return Check("events", False, f"{rows[0]['n']} of {total} tasks disagree with their"
                                  f" events: {'; '.join(map(_disagreement, rows))}")


def _disagreement(row: DictRow) -> str:
    said = ("it has no event" if row["event_status"] is None
            else f"its latest event says {row['event_status']}"
            if row["event_status"] != row["status"] else "")
    if row["status"] in FINAL_STATUSES and row["finished_at"] is None:
        said = " and ".join(filter(None, (said, "it has no finished_at")))
    return f"{row['id']} is {row['status']} but {said}"


async def _compare_live(database: DatabaseSettings, manifest: Manifest,
                        result: Verification) -> None:
    try:
        async with await _connect(database.url) as conn:
            live = await _row_counts(conn)
    except (psycopg.Error, OrchestratorError) as exc:
        result.live = f"live database not compared: {one_line(exc)}"
        return
    result.live_differences = _differences(manifest.row_counts, live)
    result.live = ("live database differs from the backup (for information; the checks judge"
                   " the dump): " + _shown(result.live_differences, "in the backup", "live")
                   if result.live_differences else "live database has the backup's row counts")


# --- restore -------------------------------------------------------------------------------------

_REPUBLISH_WAITING = (
    "WITH t AS (UPDATE tasks SET published_at = NULL, version = version + 1,"
    " updated_at = now() WHERE status IN ('queued', 'retrying') RETURNING id, status, attempts)"
    " , e AS (INSERT INTO task_events (task_id, kind, status, attempt, worker_id, detail)"
    " SELECT id, 'restored', status, attempts, %(actor)s,"
    " %(detail)s || jsonb_build_object('was', status) FROM t)"
    " SELECT status, count(*) AS n FROM t GROUP BY status"
)
_REQUEUE_RUNNING = (  # the run belongs to the replaced timeline: a new attempt, one to spare
    "WITH t AS (UPDATE tasks SET status = 'queued', run_id = NULL, worker_id = NULL,"
    " started_at = NULL, max_attempts = greatest(max_attempts, attempts + 1),"
    " available_at = now(), published_at = NULL, version = version + 1, updated_at = now()"
    " WHERE status = 'running' RETURNING id, status, attempts)"
    " , e AS (INSERT INTO task_events (task_id, kind, status, attempt, worker_id, detail)"
    " SELECT id, 'restored', status, attempts, %(actor)s,"
    " %(detail)s || jsonb_build_object('was', 'running') FROM t)"
    " SELECT 'running' AS status, count(*) AS n FROM t"
)
_LEDGER_COLUMNS = "file_name, database, sha256, size_bytes, created_at, verified_at, row_counts"
_PUT_BACK = (f"INSERT INTO {LEDGER} ({_LEDGER_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
             " ON CONFLICT (sha256) DO NOTHING").encode()


async def restore_backup(database: DatabaseSettings, redis: RedisSettings,
                         dump: Path) -> Restored:
    """Replace the configured database's tables with the dump's, in one transaction."""
    started = time.monotonic()
    manifest = read_manifest(dump)
    if await asyncio.to_thread(sha256_of, dump) != manifest.sha256:
        raise BackupProblem(f"{dump} does not match its manifest's sha256: it changed or was"
                            " damaged after backup create wrote it; nothing was restored")
    await ensure_database(database)
    async with await _connect(database.url) as conn:
        newer = sorted(set(await _migrations(conn)) - set(manifest.migrations))
        ledger = (await _all(conn, f"SELECT {_LEDGER_COLUMNS} FROM {LEDGER}")
                  if await _exists(conn, LEDGER) else [])
    if newer:
        raise BackupProblem(f"the configured database has migrations the backup predates"
                            f" ({', '.join(newer)}): restore it into an empty database"
                            " (ORCH_DATABASE_URL naming a new one); nothing was restored")
    await _tool("pg_restore", ["--clean", "--if-exists", "--no-owner", "--exit-on-error",
                               "--single-transaction", str(dump)], database.url,
                options=f"-c lock_timeout={LOCK_TIMEOUT_MS}")
    pool = await open_pool(database, name="backup-restore")
    try:
        applied = [f"{m.version:04d}_{m.name}" for m in await migrate(pool)]
        async with pool.connection() as conn, conn.transaction():
            for row in ledger:
                await conn.execute(
                    _PUT_BACK,
                    (*(row[c] for c in _LEDGER_COLUMNS.split(", ")[:-1]),
                     jsonb(row["row_counts"])))
            params = {"actor": ACTOR, "detail": jsonb({"backup": dump.name})}
            requeued = {"queued": 0, "retrying": 0, "running": 0}
            for statement in (_REPUBLISH_WAITING, _REQUEUE_RUNNING):  # this order: once each
                for row in await _all(conn, statement, params):
                    requeued[row["status"]] += int(row["n"])
    finally:
        await pool.close()
    return Restored(dump, manifest, requeued, await _clear_status_cache(redis), applied,
                    round(time.monotonic() - started, 3))


async def _clear_status_cache(redis: RedisSettings) -> int | None:
    """Remove every cached task status under the prefix (they describe the replaced rows)."""
    pattern = RedisKeys(re.sub(r"([*?\[\]\\])", r"\\\1", redis.prefix)).task("*")
    client = aioredis.Redis.from_url(redis.url, socket_timeout=2, socket_connect_timeout=2)
    removed = 0
    try:
        keys: list[Any] = []
        async for key in client.scan_iter(match=pattern, count=_BATCH):
            keys.append(key)
            if len(keys) >= _BATCH:
                removed, keys = removed + await client.delete(*keys), []
        return removed + (await client.delete(*keys) if keys else 0)
    except RedisError:
        return None
    finally:
        await client.aclose()


# --- the ledger ------------------------------------------------------------------------------

_RECORD = (
    f"INSERT INTO {LEDGER} ({_LEDGER_COLUMNS}) VALUES (%(file)s, %(database)s, %(sha256)s,"
    " %(size)s, %(created_at)s, CASE WHEN %(verified)s THEN now() END, %(counts)s)"
    " ON CONFLICT (sha256) DO UPDATE SET file_name = EXCLUDED.file_name,"
    f" verified_at = coalesce(EXCLUDED.verified_at, {LEDGER}.verified_at)"
)
_LAST_VERIFIED = (
    "SELECT coalesce(extract(epoch FROM max(verified_at)), 0)::float8 AS at_s,"
    " extract(epoch FROM now() - coalesce(max(verified_at),"
    " (SELECT min(applied_at) FROM schema_migrations), now()))::float8 AS age_s"
    f" FROM {LEDGER}"
)


class BackupLedger(Store):
    """The ``backups`` table: every dump written, and when it last passed ``verify``."""

    async def record(self, dump: Path, manifest: Manifest, *, verified: bool) -> None:
        await self.run("backup_record", _RECORD, {
            "file": str(dump), "database": manifest.database,
            "sha256": manifest.sha256, "size": manifest.size_bytes,
            "created_at": manifest.created_at, "verified": verified,
            "counts": jsonb(manifest.row_counts)})

    async def last_verified(self) -> tuple[float, float]:
        """``(when the newest verification was, as Unix time; its age in seconds)``. With none,
        ``(0, the database's age)``: since its first migration, so a new deployment has as long
        to verify its first backup as any later one."""
        row = await self.fetch_one("backup_last_verified", _LAST_VERIFIED)
        assert row is not None
        return float(row["at_s"]), float(row["age_s"])

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        return await self.fetch_all(
            "backup_recent", f"SELECT {_LEDGER_COLUMNS} FROM {LEDGER}"
                             " ORDER BY created_at DESC LIMIT %s", (limit,))


# --- PostgreSQL helpers ------------------------------------------------------------------------

async def _connect(url: str, autocommit: bool = True) -> AsyncConnection[DictRow]:
    try:
        return await psycopg.AsyncConnection.connect(url, autocommit=autocommit,
                                                     row_factory=dict_row, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise await postgres_error(url, exc) from exc


async def _one(conn: AsyncConnection[DictRow], query: str, params: Any = None) -> DictRow:
    row = await (await conn.execute(query.encode(), params)).fetchone()
    assert row is not None
    return row


async def _all(conn: AsyncConnection[DictRow], query: str, params: Any = None) -> list[DictRow]:
    return await (await conn.execute(query.encode(), params)).fetchall()


async def _exists(conn: AsyncConnection[DictRow], table: str) -> bool:
    row = await _one(conn, "SELECT to_regclass(%s) IS NOT NULL AS found", (f"public.{table}",))
    return bool(row["found"])


async def _migrations(conn: AsyncConnection[DictRow]) -> list[str]:
    """The applied migrations, as ``NNNN_name`` (none: not an orchestrator database yet)."""
    if not await _exists(conn, "schema_migrations"):
        return []
    rows = await _all(conn, "SELECT version, name FROM schema_migrations ORDER BY version")
    return [f"{row['version']:04d}_{row['name']}" for row in rows]


async def _row_counts(conn: AsyncConnection[DictRow]) -> dict[str, int]:
    """Rows per table of the database's own schemas (``public`` tables unqualified), but the
    ledger's."""
    tables = await _all(conn, "SELECT n.nspname AS schema, c.relname AS name FROM pg_class c"
                              " JOIN pg_namespace n ON n.oid = c.relnamespace"
                              " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
                              " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                              " AND n.nspname NOT LIKE 'pg_toast%%' ORDER BY 1, 2")
    counts = {}
    for t in tables:
        shown = t["name"] if t["schema"] == "public" else f"{t['schema']}.{t['name']}"
        if shown != LEDGER:
            query = sql.SQL("SELECT count(*) AS n FROM {}.{}").format(
                sql.Identifier(t["schema"]), sql.Identifier(t["name"]))
            row = await (await conn.execute(query)).fetchone()
            counts[shown] = int(row["n"]) if row is not None else 0
    return counts


def _differences(expected: dict[str, int],
                 found: dict[str, int]) -> dict[str, tuple[int | None, int | None]]:
    return {t: (expected.get(t), found.get(t)) for t in sorted({*expected, *found})
            if expected.get(t) != found.get(t)}


def _shown(differences: dict[str, tuple[int | None, int | None]], first: str,
           second: str) -> str:
    def count(n: int | None) -> str:
        return "no table" if n is None else str(n)
    return "; ".join(f"{t}: {count(a)} {first}, {count(b)} {second}"
                     for t, (a, b) in differences.items())


def _version(migrations: list[str]) -> int:
    return int(migrations[-1].split("_", 1)[0]) if migrations else 0


def _dbname(url: str) -> str:
    return str(conninfo.conninfo_to_dict(url).get("dbname") or "postgres")


async def _tool(tool: str, args: list[str], url: str, options: str = "") -> None:
    """Run ``pg_dump`` or ``pg_restore`` on the database ``url`` names; the password goes in
    the environment, not on the command line (where ``ps`` shows it)."""
    path = shutil.which(tool)
    if path is None:
        raise BackupProblem(f"{tool} is not installed (apt-get install postgresql-client)")
    info: dict[str, Any] = dict(conninfo.conninfo_to_dict(url))
    password = info.pop("password", None)
    env = {**os.environ, "PGAPPNAME": f"orchestrator-{tool}", "PGCONNECT_TIMEOUT": "5"}
    if password:
        env["PGPASSWORD"] = str(password)
    if options:
        env["PGOPTIONS"] = options
    proc = await asyncio.create_subprocess_exec(
        path, *args, f"--dbname={conninfo.make_conninfo('', **info)}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        _, stderr = await proc.communicate()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode:
        text = "".join(c if c.isprintable() or c == "\n" else "?"  # a damaged dump's bytes
                       for c in stderr.decode(errors="replace"))
        said = [line for line in text.splitlines() if line.strip()]
        raise BackupProblem(f"{tool} failed (exit {proc.returncode}): "
                            + one_line(" / ".join(said[-3:]) or "no message"))
