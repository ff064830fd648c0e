"""``orchestrator backup create|verify|restore|status``: dumps of the database, their verified
restore into a scratch database, a real restore, and the ledger (``service.db.backup`` does it;
this module parses and prints)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.output import print_json, print_table
from service.errors import OrchestratorError, one_line
from service.reachability import redact
from service.settings import Settings

if TYPE_CHECKING:  # the service side loads prometheus-client: not at import time (see run_api)
    from service.db.backup import Manifest, Restored, Verification

LEDGER_COLUMNS = ("created_at", "verified_at", "size_bytes", "file_name")


def add_arguments(backup: argparse.ArgumentParser) -> None:
    actions = backup.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="dump the database (pg_dump -Fc, one snapshot)"
                                               " with a manifest next to it; prints the path")
    create.add_argument("--to", type=Path, metavar="DIR", help="the folder to write into"
                        " (default: ORCH_BACKUP_DIR, else backups in the state folder)")
    verify = actions.add_parser("verify", help="restore a dump into a scratch database and"
                                " check it (exit 0: every check passed, 1: one failed)")
    verify.add_argument("file", type=Path, metavar="FILE", help="the dump backup create wrote")
    restore = actions.add_parser("restore", help="replace the configured database's tables"
                                 " with a dump's; waiting and running tasks are published again")
    restore.add_argument("file", type=Path, metavar="FILE", help="the dump backup create wrote")
    restore.add_argument("--yes", action="store_true",
                         help="really replace them (required; requests wait while it runs)")
    status = actions.add_parser("status", help="the latest backups, and whether one was"
                                " verified within ORCH_BACKUP_MAX_AGE_S")
    status.add_argument("--check", action="store_true", help="exit 1 when none was (for cron"
                        " and scripts)")
    for child in actions.choices.values():  # after the action too; SUPPRESS keeps a --json
        child.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                           help="machine-readable output")  # given before it


def run(settings: Settings, args: argparse.Namespace) -> int:
    import psycopg  # what the database may still say (a lost connection, a refused statement)

    action = args.backup_command
    if action == "restore" and not args.yes:
        print(f"error: restore replaces every table of {redact(settings.database.url)} with"
              f" the backup's; add --yes to do it: orchestrator backup restore {args.file} --yes",
              file=sys.stderr)
        return 2
    try:
        if action == "create":
            return _create(settings, (args.to or settings.backup_path).absolute(), args.json)
        if action == "verify":
            return _verify(settings, args.file.absolute(), args.json)
        if action == "restore":
            return _restore(settings, args.file.absolute(), args.json)
        return _status(settings, args.json, args.check)
    except (OrchestratorError, psycopg.Error) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2


def _create(settings: Settings, folder: Path, as_json: bool) -> int:
    from service.db.backup import create_backup

    dump, manifest = asyncio.run(create_backup(settings.database, folder))
    if as_json:
        print_json({"file": str(dump), "manifest": manifest.as_json()})
    else:
        print(f"backed up {manifest.database}: {sum(manifest.row_counts.values())} rows in"
              f" {len(manifest.row_counts)} tables, schema version {manifest.schema_version},"
              f" {manifest.size_bytes} bytes in {manifest.duration_s:.1f} s", file=sys.stderr)
        print(dump)
    return 0


def _verify(settings: Settings, dump: Path, as_json: bool) -> int:
    from service.db.backup import verify_backup

    result = asyncio.run(verify_backup(settings.database, dump))
    if as_json:
        print_json(_verification_json(result))
    else:
        print(f"verify {dump} ({_about(result.manifest)})")
        width = max(len(check.name) for check in result.checks)
        for check in result.checks:
            print(f"  {'pass' if check.passed else 'FAIL'}  {check.name:<{width}}  {check.detail}")
        print(result.live)
        print(f"verified in {result.duration_s:.1f} s; recorded in the backups table"
              if result.passed else f"NOT verified ({result.duration_s:.1f} s): the backup"
                                    " is not recorded as verified")
    return 0 if result.passed else 1


def _verification_json(result: Verification) -> dict[str, Any]:
    return {"file": str(result.dump), "passed": result.passed, "recorded": result.recorded,
            "duration_s": result.duration_s, "manifest": result.manifest.as_json(),
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail}
                       for c in result.checks],
            "live": {"differs": bool(result.live_differences), "summary": result.live,
                     "tables": {table: {"backup": backup, "live": live} for table,
                                (backup, live) in result.live_differences.items()}}}


def _restore(settings: Settings, dump: Path, as_json: bool) -> int:
    from service.db.backup import restore_backup

    restored = asyncio.run(restore_backup(settings.database, settings.redis, dump))
    if as_json:
        print_json(_restored_json(restored))
        return 0
    requeued = sum(restored.requeued.values())
    by_status = ", ".join(f"{n} {status}" for status, n in restored.requeued.items() if n)
    print(f"restored {restored.manifest.database} from {dump} ({_about(restored.manifest)})"
          f" in {restored.duration_s:.1f} s")
    print(f"requeued {requeued} tasks ({by_status}): the outbox publishes them again"
          if requeued else "requeued no task: none was waiting or running")
    print("status cache: " + ("Redis did not answer; entries expire within"
                              " ORCH_STATUS_CACHE_TTL_S" if restored.cache_cleared is None
                              else f"{restored.cache_cleared} entries removed"))
    if restored.migrations_applied:
        print("then applied: " + ", ".join(restored.migrations_applied))
    return 0


def _restored_json(restored: Restored) -> dict[str, Any]:
    return {"file": str(restored.dump), "manifest": restored.manifest.as_json(),
            "requeued": restored.requeued, "requeued_total": sum(restored.requeued.values()),
            "cache_cleared": restored.cache_cleared,
            "migrations_applied": restored.migrations_applied,
            "duration_s": restored.duration_s}


def _status(settings: Settings, as_json: bool, check: bool) -> int:
    from service.db.backup import BackupLedger
    from service.db.migrate import migrated_pool

    async def go() -> tuple[list[dict[str, Any]], tuple[float, float]]:
        async with migrated_pool(settings.database, "backup") as pool:
            ledger = BackupLedger(pool)
            return await ledger.recent(10), await ledger.last_verified()

    rows, (verified_at, age_s) = asyncio.run(go())
    limit_s = settings.database.backup_max_age_s
    fresh = verified_at > 0 and age_s <= limit_s
    if as_json:
        print_json({"fresh": fresh, "max_age_s": limit_s, "backups": [
            {**row, "created_at": row["created_at"].isoformat(),
             "verified_at": row["verified_at"] and row["verified_at"].isoformat()}
            for row in rows], "last_verified_at": verified_at or None,
            "last_verified_age_s": round(age_s, 1) if verified_at else None})
    else:
        print_table(rows, LEDGER_COLUMNS, wide=("file_name",))
        when = (f"verified {datetime.fromtimestamp(verified_at, UTC):%Y-%m-%d %H:%M:%S} UTC,"
                f" {age_s / 3600:.1f} h ago" if verified_at else "no backup was ever verified")
        print(f"{'ok' if fresh else 'STALE'}: the newest verified backup: {when} (limit"
              f" ORCH_BACKUP_MAX_AGE_S = {limit_s / 3600:g} h)")
    return 1 if check and not fresh else 0


def _about(manifest: Manifest) -> str:
    return (f"backup of {manifest.database} taken {manifest.created_at}, schema version"
            f" {manifest.schema_version}")
