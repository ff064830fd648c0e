"""``orchestrator schedule create|list|show|pause|resume|delete``: recurring schedules of the
key's tenant, over ``/v1/schedules``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from orchestrator.client import Client
from orchestrator.output import print_json, print_table

PATH = "/v1/schedules"
LIST_COLUMNS = ("name", "cron", "timezone", "agent", "paused", "missed", "next_due_at",
                "last_fired_at", "fired", "skipped")


def add_arguments(schedule: argparse.ArgumentParser) -> None:
    actions = schedule.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a schedule that creates a task per due time")
    create.add_argument("name", help="unique within the tenant: a-z, 0-9, '_', '.', '-'")
    create.add_argument("--cron", required=True, metavar="EXPR",
                        help="five fields: minute hour day-of-month month day-of-week"
                             " ('*/5 * * * *': every five minutes)")
    create.add_argument("agent", help="the agent type of its tasks")
    create.add_argument("input", nargs="?", default="null", help="the tasks' input as JSON")
    create.add_argument("--timezone", default="UTC", help="IANA zone the cron expression is"
                                                          " read in (default UTC)")
    create.add_argument("--missed", choices=("skip", "catch-up"), default="skip",
                        help="due times missed while no API ran: skip (fire only the latest,"
                             " if at most ORCH_SCHEDULE_GRACE_S late) or catch-up (fire each)")
    create.add_argument("--priority", type=int, choices=range(10), metavar="0-9",
                        help="its tasks' priority (above 5 needs the tasks:priority scope)")
    create.add_argument("--max-attempts", type=int, help="attempts before a task is dead")
    create.add_argument("--timeout-s", type=float, dest="task_timeout_s",
                        help="seconds one attempt may run")
    create.add_argument("--concurrency-key", metavar="KEY",
                        help="its tasks share the agent's max_concurrency_per_key with others"
                             " of this key")
    actions.add_parser("list", help="the schedules, with their next and last due times")
    for name, help_text in (("show", "one schedule"),
                            ("pause", "stop creating tasks until resumed"),
                            ("resume", "go on from the next due time (paused ones are not"
                                       " made up)"),
                            ("delete", "remove it (the tasks it created stay)")):
        actions.add_parser(name, help=help_text).add_argument(
            "name", help="the schedule's name (schedule list shows them)")
    for child in actions.choices.values():
        child.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                           help="machine-readable output")


def run(client: Client, args: argparse.Namespace) -> int:
    command = args.schedule_command
    as_json = getattr(args, "json", False)
    if command == "create":
        try:
            payload = json.loads(args.input)
        except json.JSONDecodeError as exc:
            print(f"error: INPUT is not valid JSON: {exc}", file=sys.stderr)
            return 2
        body: dict[str, Any] = {"name": args.name, "cron": args.cron, "agent": args.agent,
                                "input": payload, "timezone": args.timezone,
                                "missed": args.missed.replace("-", "_")}
        for field, value in (("priority", args.priority), ("max_attempts", args.max_attempts),
                             ("timeout_s", args.task_timeout_s),
                             ("concurrency_key", args.concurrency_key)):
            if value is not None:
                body[field] = value
        return _shown(client.call("POST", PATH, json=body), as_json)
    if command == "list":
        schedules = client.call("GET", PATH)["schedules"]
        if as_json:
            print_json(schedules)
        else:
            print_table(schedules, LIST_COLUMNS)
        return 0
    if command == "delete":
        client.call("DELETE", f"{PATH}/{args.name}")
        print(f"schedule {args.name} deleted")
        return 0
    if command == "show":
        return _shown(client.call("GET", f"{PATH}/{args.name}"), as_json)
    return _shown(client.call("POST", f"{PATH}/{args.name}/{command}"), as_json)


def _shown(schedule: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print_json(schedule)
        return 0
    for key in ("name", "cron", "timezone", "agent", "missed", "paused", "next_due_at",
                "last_due_at", "last_task_id", "fired", "skipped"):
        print(f"{key + ':':<14}{schedule.get(key)}")
    return 0
