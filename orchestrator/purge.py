"""``orchestrator purge --older-than 7d [--status dead] [--dry-run]``: retention by hand,
straight in the database, in the same batches as the API's retention job."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from orchestrator.output import print_json, print_table
from service.domain import TaskStatus
from service.durations import duration_s
from service.retention import RETAINED
from service.settings import Settings


def add_arguments(purge: argparse.ArgumentParser) -> None:
    purge.add_argument("--older-than", required=True, metavar="AGE",
                       help="delete tasks that finished longer ago than this (e.g. 7d, 12h)")
    purge.add_argument("--status", action="append", choices=[s.value for s in RETAINED],
                       help="only tasks that ended so (repeat for several; default: all"
                            " three final statuses)")
    purge.add_argument("--dry-run", action="store_true",
                       help="count what would be deleted, delete nothing")


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        age_s = duration_s(args.older_than)
    except ValueError as exc:
        print(f"error: --older-than: {exc}", file=sys.stderr)
        return 2
    statuses = [TaskStatus(s) for s in args.status] if args.status else list(RETAINED)
    rows = asyncio.run(_purge(settings, statuses, age_s, args.dry_run,
                              settings.tasks.retention_batch))
    if args.json:
        print_json({"dry_run": args.dry_run, "older_than_s": age_s, "statuses": rows})
    else:
        print_table(rows, ["status", "would_delete" if args.dry_run else "deleted"])
    return 0


async def _purge(settings: Settings, statuses: list[TaskStatus], age_s: float, dry_run: bool,
                 batch: int) -> list[dict[str, Any]]:
    from service.db.migrate import migrated_pool  # loads prometheus-client: not at import
    from service.db.retention import RetentionStore

    async with migrated_pool(settings.database, "purge") as pool:
        store = RetentionStore(pool)
        if dry_run:
            return [{"status": s.value, "would_delete": await store.due(s, age_s)}
                    for s in statuses]
        return [{"status": s.value, "deleted": await store.purge(s, age_s, batch)}
                for s in statuses]
