"""``orchestrator stack down|status|pages`` (``stack up`` is ``processes.run_up``).

Each finds the stack through the state folder's absolute path (settings), so they work from any
working folder; none of them claims something it did not see.
"""

from __future__ import annotations

import sys
import time

from orchestrator.output import print_json, print_table
from service.procinfo import open_fds, resident_bytes
from service.settings import Settings
from stack.own_services import recorded, stop_own
from stack.page_inbox import Inbox
from stack.supervisor import recorded_status, stop_recorded

EXIT_GONE = 1
"""``stack status``: no stack runs from this state folder, or one of its processes is gone."""


def down(settings: Settings) -> int:
    folder = settings.stack_dir
    stopped, still = stop_recorded(folder)
    stopped += stop_own(folder)
    for name in stopped:
        print(f"stopped {name}")
    if still:
        print(f"error: still running after SIGTERM and SIGKILL: {', '.join(still)}",
              file=sys.stderr)
        return 1
    if not stopped:
        print(f"no stack runs from {folder}")
    return 0


def status(settings: Settings, as_json: bool) -> int:
    folder = settings.stack_dir
    record, rows = recorded_status(folder)
    processes = [{"process": entry.name, "pid": entry.pid,
                  "state": "running" if running else "gone",
                  "rss_mib": _mib(resident_bytes(entry.pid)) if running else None,
                  "open_fds": open_fds(entry.pid) if running else None,
                  "log": entry.log or None}
                 for entry, running in rows]
    own = [{"name": i.name, "port": str(i.port), "url": i.url} for i in recorded(folder)]
    if as_json:
        print_json({"folder": str(folder), "urls": record.urls if record else {},
                    "processes": processes, "own_services": own})
    elif record is None:
        print(f"no stack runs from {folder}")
    else:
        print(f"stack in {folder}: {record.describe()}")
        for name, url in record.urls.items():
            print(f"  {name + ':':<14}{url}")
        for service in own:
            print(f"  {service['name'] + ':':<14}own instance on port {service['port']}")
        print_table(processes, ["process", "pid", "state", "rss_mib", "open_fds", "log"])
    healthy = bool(processes) and all(p["state"] == "running" for p in processes)
    return 0 if healthy else EXIT_GONE


def pages(settings: Settings, as_json: bool) -> int:
    entries = Inbox(settings.stack_dir / "pages.jsonl").entries()
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


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)
