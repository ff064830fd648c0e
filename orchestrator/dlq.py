"""``orchestrator dlq list|show|replay|purge``: the dead-letter record, over the admin API
(``/v1/admin/dead-letters``).

A bulk replay goes in batches at ``--rate`` dead letters per second, oldest first, so a replay
of thousands does not arrive at the agents as one wave. Exit codes: 0 done, 1 when some dead
letters could not be replayed (orphans, tasks no longer dead), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.client import Client
from orchestrator.output import print_json, print_table
from service.durations import duration_s

PATH = "/v1/admin/dead-letters"
MAX_BATCH = 100
LIST_COLUMNS = ("id", "task_id", "agent", "reason", "dead_at", "task_status", "replayed_by",
                "error")


def add_arguments(dlq: argparse.ArgumentParser) -> None:
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="dead letters, newest first (open ones unless"
                                              " --state says otherwise)")
    _filters(listing)
    listing.add_argument("--state", choices=("open", "replayed", "all"), default="open",
                         help="open (not replayed, the default), replayed, or all")
    listing.add_argument("--limit", type=int, default=50, help="dead letters per page (1-500)")
    listing.add_argument("--before", type=int, metavar="ID",
                         help="the page after this id (printed under a page)")
    show = actions.add_parser("show", help="one dead letter with its headers and body")
    show.add_argument("id", type=int, help="the dead letter's id (dlq list shows it)")
    replay = actions.add_parser("replay", help="requeue the tasks of dead letters, each with a"
                                               " fresh attempt budget")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", type=int, action="append", dest="ids", metavar="ID",
                       help="a dead letter to replay (repeat for several)")
    which.add_argument("--all", action="store_true", dest="every",
                       help="every open dead letter matching --agent, --reason, --since")
    _filters(replay)
    replay.add_argument("--dry-run", action="store_true",
                        help="say what would be replayed, replay nothing")
    replay.add_argument("--rate", type=float, default=50.0, metavar="N",
                        help="dead letters replayed per second at most (default 50)")
    purge = actions.add_parser("purge", help="delete dead letters recorded longer ago than an"
                                             " age (their tasks stay)")
    purge.add_argument("--older-than", required=True, metavar="AGE",
                       help="e.g. 7d, 12h")
    purge.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    for child in actions.choices.values():  # after the action too; SUPPRESS keeps a --json
        child.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                           help="machine-readable output")  # given before it


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", help="only dead letters of this agent type")
    parser.add_argument("--reason", help="only this reason (e.g. non_retryable, exhausted,"
                                         " delivery_limit, rejected)")
    parser.add_argument("--since", metavar="WHEN",
                        help="only those recorded since: an age (12h, 7d) or an ISO 8601 time")


def since_time(text: str, now: datetime | None = None) -> str:
    """``--since``: an age before now, or a time as given (UTC when it names no zone)."""
    try:
        return ((now or datetime.now(UTC)) - timedelta(seconds=duration_s(text))).isoformat()
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r} is neither an age (12h, 7d) nor an ISO 8601 time"
                         " (2026-12-01T08:00:00Z)") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


def run(client: Client, args: argparse.Namespace) -> int:
    try:
        filters = {"agent": getattr(args, "agent", None), "reason": getattr(args, "reason", None),
                   "since": since_time(args.since) if getattr(args, "since", None) else None}
        if args.dlq_command == "purge":
            return _purge(client, duration_s(args.older_than), args.dry_run, args.json)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    filters = {k: v for k, v in filters.items() if v is not None}
    if args.dlq_command == "list":
        return _list(client, filters, args)
    if args.dlq_command == "show":
        letter = client.call("GET", f"{PATH}/{args.id}")
        print_json(letter)
        return 0
    if args.rate <= 0:
        print("error: --rate must be above 0", file=sys.stderr)
        return 2
    return _replay(client, args.ids, filters, args.dry_run, args.rate, args.json)


def _list(client: Client, filters: dict[str, Any], args: argparse.Namespace) -> int:
    params = {**filters, "state": args.state, "limit": args.limit}
    if args.before:
        params["before"] = args.before
    page = client.call("GET", PATH, params=params)
    if args.json:
        print_json(page)
        return 0
    rows = [{**row, "task_id": row["task_id"] or "(orphan)"} for row in page["items"]]
    print_table(rows, LIST_COLUMNS)
    print(f"\n{page['open']} open dead letters match")
    if page["next_before"]:
        print(f"more: add --before {page['next_before']}")
    return 0


def _replay(client: Client, ids: list[int] | None, filters: dict[str, Any], dry_run: bool,
            rate: float, as_json: bool) -> int:
    batch = max(1, min(MAX_BATCH, int(rate)))
    body: dict[str, Any] = {**filters, "dry_run": dry_run, "limit": batch}
    if ids is not None:
        body.update(ids=ids, limit=len(ids))
    replayed: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    while True:
        started = time.monotonic()
        answer = client.call("POST", f"{PATH}/replay", json=body)
        replayed += answer["replayed"]
        skipped += answer["skipped"]
        if not answer["more"] or ids is not None:
            break
        if not as_json:
            print(f"  {'would replay' if dry_run else 'replayed'} {len(replayed)} so far",
                  file=sys.stderr, flush=True)
        body["after_id"] = answer["last_id"]
        time.sleep(max(0.0, len(answer["replayed"]) / rate - (time.monotonic() - started)))
    if as_json:
        print_json({"dry_run": dry_run, "replayed": replayed, "skipped": skipped})
    else:
        _print_replay(replayed, skipped, dry_run)
    return 1 if skipped else 0


def _print_replay(replayed: list[dict[str, Any]], skipped: list[dict[str, Any]],
                  dry_run: bool) -> None:
    verb = "would replay" if dry_run else "replayed"
    if replayed and len(replayed) <= 50:
        print_table(replayed, ["id", "task_id", "agent", "reason"])
    if skipped:
        print("\nnot replayed:")
        print_table(skipped, ["id", "task_id", "why"], wide=("why",))
    print(f"\n{verb} {len(replayed)} dead letters; {len(skipped)} not replayed")
    if replayed and not dry_run:
        print("follow them with: orchestrator tasks --status queued, orchestrator events"
              " TASK_ID")


def _purge(client: Client, age_s: float, dry_run: bool, as_json: bool) -> int:
    answer = client.call("POST", f"{PATH}/purge", json={"older_than_s": age_s,
                                                        "dry_run": dry_run})
    if as_json:
        print_json(answer)
    else:
        print(f"{'would delete' if dry_run else 'deleted'} {answer['purged']} dead letters"
              f" recorded more than {age_s:g} s ago (their tasks stay)")
    return 0

