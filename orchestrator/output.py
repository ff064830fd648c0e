"""Human-readable tables and timelines, and ``--json`` output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

_MAX_CELL = 60


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def print_task(task: dict[str, Any]) -> None:
    for key in ("id", "agent", "status", "attempts", "max_attempts", "created_at",
                "finished_at", "trace_id", "error"):
        print(f"{key + ':':<14}{_cell(task.get(key))}")
    if task.get("result") is not None:
        print(f"{'result:':<14}{json.dumps(task['result'])}")


def print_events(events: Sequence[dict[str, Any]]) -> None:
    """One line per hop, with the time since the first event."""
    if not events:
        print("(no events)")
        return
    start = datetime.fromisoformat(events[0]["at"])
    for event in events:
        offset = (datetime.fromisoformat(event["at"]) - start).total_seconds() * 1000
        detail = json.dumps(event["detail"]) if event.get("detail") else ""
        stamp = f"+{offset:.1f}ms"
        print(f"{stamp:>11}  {event['kind']:<18} {event['status']:<10} "
              f"attempt {event['attempt']}  {event.get('worker_id') or '':<24} {detail}")
