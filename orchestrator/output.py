"""Human-readable tables and timelines, and ``--json`` output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

_MAX_CELL = 60


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _cell(value: Any, wide: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    text = str(value)
    return text if wide or len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str],
                wide: Sequence[str] = ()) -> None:
    """Rows under upper-case headers; cells are cut at 60 characters but in ``wide`` columns."""
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(c), c in wide) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """A Markdown table of ``rows`` (``(none)`` for no rows), one line per list item."""
    if not rows:
        return ["(none)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c), wide=True).replace("|", "\\|")
                                        for c in columns) + " |")
    return lines


def print_task(task: dict[str, Any]) -> None:
    for key in ("id", "agent", "status", "priority", "attempts", "max_attempts", "created_at",
                "available_at", "finished_at", "trace_id", "error"):
        print(f"{key + ':':<14}{_cell(task.get(key))}")
    if task.get("result") is not None:
        print(f"{'result:':<14}{json.dumps(task['result'])}")


def print_events(events: Sequence[dict[str, Any]], absolute: bool = False) -> None:
    """One line per hop, with the time since the first event (``absolute``: the UTC time)."""
    if not events:
        print("(no events)")
        return
    start = datetime.fromisoformat(events[0]["at"])
    rows = []
    for event in events:
        at = datetime.fromisoformat(event["at"])
        stamp = (at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if absolute
                 else f"+{(at - start).total_seconds() * 1000:.1f}ms")
        rows.append({"at": stamp, "kind": event["kind"], "status": event["status"],
                     "attempt": event["attempt"], "worker": event.get("worker_id"),
                     "detail": _detail(event.get("detail"))})
    print_table(rows, ["at", "kind", "status", "attempt", "worker", "detail"], wide=("detail",))


def _detail(detail: dict[str, Any] | None) -> str:
    if not detail:
        return ""
    return " ".join(f"{k}={json.dumps(v) if isinstance(v, dict | list) else v}"
                    for k, v in detail.items())


def print_stats(snapshot: dict[str, Any]) -> None:
    """``orchestrator stats``: tasks, queues, outbox and throughput, as tables."""
    print(f"at {snapshot['at']}\n")
    statuses = ["queued", "running", "retrying", "succeeded", "dead", "cancelled"]
    rows = []
    for agent in snapshot["agents"]:
        row: dict[str, Any] = {"agent": agent["agent"], **agent["by_status"],
                               "past_timeout": agent["running_past_timeout"]}
        for window in agent["windows"]:
            row[f"per_s_{window['minutes']}m"] = window["per_second"]
            row[f"failed_{window['minutes']}m"] = _ratio(window["failure_ratio"])
        rows.append(row)
    minutes = [w["minutes"] for w in snapshot["totals"]]
    print_table(rows, ["agent", *statuses, "past_timeout",
                       *(f"{k}_{m}m" for m in minutes for k in ("per_s", "failed"))])
    totals = ", ".join(f"last {w['minutes']} min: {w['per_second']:g}/s, failure ratio"
                       f" {_ratio(w['failure_ratio'])}" for w in snapshot["totals"])
    print(f"\nall agents: {totals}\n")
    print_table(snapshot["queues"], ["queue", "ready", "unacked", "consumers"])
    waiting = snapshot["dead_letter_queue_ready"]
    dead = ", ".join(f"{agent} {n}" for agent, n in sorted(snapshot["dead_letters_open"].items()))
    print(f"\noutbox: {snapshot['outbox_unpublished']} unpublished, oldest"
          f" {snapshot['outbox_oldest_s']:g} s")
    print(f"dead letters open: {dead or 'none'} (orchestrator dlq list); waiting to be"
          f" recorded: {'-' if waiting is None else waiting}")
    if snapshot.get("broker_error"):
        print(f"broker: {snapshot['broker_error']}")


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
