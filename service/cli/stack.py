"""``orchestrator stack down|status|pages`` (``stack up`` is ``processes.run_up``)."""

from __future__ import annotations

import time
from pathlib import Path

from service.cli.output import print_json, print_table
from service.settings import Settings
from stack.native import recorded_status, stop_recorded
from stack.own_services import stop_own
from stack.page_inbox import Inbox


def state_dir(settings: Settings) -> Path:
    return Path(settings.state_dir) / "stack"


def down(settings: Settings) -> int:
    stopped = stop_recorded(state_dir(settings)) + stop_own(state_dir(settings))
    print("\n".join(f"stopped {name}" for name in stopped) or "nothing was running")
    left = [row for row in recorded_status(state_dir(settings)) if row[2]]
    return 1 if left else 0


def status(settings: Settings, as_json: bool) -> int:
    rows = [{"process": name, "pid": pid, "state": "running" if alive else "gone"}
            for name, pid, alive in recorded_status(state_dir(settings))]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["process", "pid", "state"])
    return 0 if rows and all(r["state"] == "running" for r in rows) else 1


def pages(settings: Settings, as_json: bool) -> int:
    entries = Inbox(state_dir(settings) / "pages.jsonl").entries()
    if as_json:
        print_json(entries)
        return 0
    rows = []
    for entry in entries:
        event = entry["event"]
        payload = event.get("payload") or {}
        details = payload.get("custom_details") or {}
        rows.append({
            "received": time.strftime("%H:%M:%S", time.localtime(entry["received_at"])),
            "action": event.get("event_action"), "severity": payload.get("severity"),
            "summary": payload.get("summary") or details.get("summary"),
            "runbook": details.get("runbook_url"),
        })
    print_table(rows, ["received", "action", "severity", "summary", "runbook"])
    return 0
