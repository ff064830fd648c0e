"""The run report: one JSON document with everything, and a Markdown page for people.

``report.json`` holds the configuration, counts, rates, latency percentiles, errors by kind, SLO
verdicts (client view, and the server view when Prometheus was asked), the per-second series
and the raw histogram buckets. ``report.md`` shows the same as tables, with the PNG plots of
:mod:`loadtest.plots` beside it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtest.findmax import SearchResult
from loadtest.generator import RunResult
from loadtest.histogram import Histogram
from loadtest.prometheus import ServerView
from loadtest.stats import RunStats
from loadtest.verdicts import Verdict, exit_code
from service.errors import MissingExtra

LATENCIES = (("submit", "submit (HTTP, from intended send)"),
             ("end_to_end", "end-to-end (intended send to final state)"),
             ("queue_wait", "queue wait (created to started)"),
             ("outbox_wait", "  of it in the outbox (created to published)"),
             ("broker_wait", "  of it in the queue and prefetch (published to started)"),
             ("run", "run (started to finished)"),
             ("lateness", "generator lateness (actual - intended send)"))


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def series_rows(stats: RunStats, offset_s: int = 0) -> list[dict[str, Any]]:
    """One row per second of the run (``offset_s`` shifts the seconds, to join stages)."""
    rows: list[dict[str, Any]] = []
    for second in range(max(stats.series, default=-1) + 1):
        row = stats.series.get(second)
        if row is None:
            rows.append({"second": second + offset_s, "sent": 0, "accepted": 0, "errors": 0,
                         "completed": 0, "in_flight": 0})
            continue
        latencies = {f"{name}_p{q}_ms": _ms(h.percentile(q / 100))
                     for name, h in (("submit", row.submit), ("e2e", row.end_to_end),
                                     ("queue_wait", row.queue_wait))
                     for q in (50, 99)}
        rows.append({
            "second": second + offset_s, "sent": row.sent, "accepted": row.accepted,
            "errors": row.errors, "completed": row.completed, "in_flight": row.in_flight,
            **latencies})
    return rows


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def run_summary(result: RunResult, found: list[Verdict]) -> dict[str, Any]:
    """Everything one run measured, JSON-ready."""
    stats = result.stats
    histograms: dict[str, Histogram] = {name: getattr(stats, name) for name, _ in LATENCIES}
    return {
        "config": result.config.describe(),
        "started_at": datetime.fromtimestamp(result.started_wall, UTC).isoformat(),
        "sending_s": round(result.sending_s, 3),
        "elapsed_s": round(result.elapsed_s, 3),
        "requests": {
            "sent": stats.sent, "answered": stats.answered, "accepted": stats.accepted,
            "tracked": stats.tracked,
            "abandoned": result.abandoned,
            "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
            "target_rate": _round(stats.target_rate()),
            "achieved_rate": _round(stats.achieved_rate()),
        },
        "tasks": {**{k: stats.tasks[k] for k in ("succeeded", "dead", "cancelled",
                                                 "unfinished")},
                  "completion_rate": _round(stats.completion_rate())},
        "errors": dict(sorted(stats.errors.items())),
        "latency_ms": {name: h.summary() for name, h in histograms.items()},
        "by_agent": {name: {"sent": a.sent, "accepted": a.accepted, "succeeded": a.succeeded,
                            "dead": a.dead, "end_to_end_ms": a.end_to_end.summary()}
                     for name, a in sorted(stats.agents.items())},
        "client": {"pool_peak_connections": result.pool_peak,
                   "connections_opened": result.pool_opened,
                   "requests_that_waited_for_a_connection": result.pool_waits,
                   "status_polls": result.polls},
        "verdicts": [v.to_json() for v in found],
        "exit_code": exit_code(found),
        "series": series_rows(stats),
        "histograms": {name: h.to_json() for name, h in histograms.items()},
    }


def build_report(result: RunResult, found: list[Verdict],
                 server: list[ServerView] | None = None,
                 search: SearchResult | None = None) -> dict[str, Any]:
    """The whole report; for a capacity search, ``result`` is its last stage."""
    report = {"tool": "orchestrator loadtest", **run_summary(result, found),
              "server_view": None if server is None else [v.to_json() for v in server]}
    if search is not None:
        offset = 0
        series: list[dict[str, Any]] = []
        for stage in search.stages:
            series += [{**row, "rate": stage.rate}
                       for row in series_rows(stage.result.stats, offset)]
            offset += len(series_rows(stage.result.stats)) or 1
        report["find_max"] = {
            "start": search.config.start, "step": search.config.step,
            "stage_s": search.config.stage_s, "keep_up": search.config.keep_up,
            "max_rate_held": search.max_rate_held,
            "stages": [{"rate": s.rate, "held": s.held, "reason": s.reason,
                        "keep_up_ratio": _round(s.keep_up, 4),
                        **{k: v for k, v in run_summary(s.result, s.verdicts).items()
                           if k not in ("series", "histograms")}}
                       for s in search.stages],
            "series": series}
    return report


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3f}%"


def markdown(report: dict[str, Any], images: list[str]) -> str:
    """``report.md``."""
    cfg, req, tasks = report["config"], report["requests"], report["tasks"]
    lines = ["# Load test report", "",
             f"`{cfg['url']}`, {cfg['profile']}, started {report['started_at']}, "
             f"{report['elapsed_s']:g}s in all (sending {report['sending_s']:g}s).", "",
             "| measure | value |", "|---|---|"]
    rows = [("requests sent", req["sent"]), ("accepted (202)", req["accepted"]),
            ("target rate (/s)", req["target_rate"]), ("achieved rate (/s)", req["achieved_rate"]),
            ("tasks succeeded", tasks["succeeded"]), ("tasks dead", tasks["dead"]),
            ("tasks unfinished", tasks["unfinished"]),
            ("completion rate (/s)", tasks["completion_rate"]),
            ("peak connections", report["client"]["pool_peak_connections"])]
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
    lines += ["", "## Latency (ms)", "",
              "| latency | count | p50 | p90 | p99 | p99.9 | max |",
              "|---|---|---|---|---|---|---|"]
    for name, title in LATENCIES:
        s = report["latency_ms"][name]
        lines.append(f"| {title} | {s['count']} | " + " | ".join(
            _cell(s[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")) + " |")
    lines += ["", "## SLO verdicts", ""]
    server = {v["slo"]: v for v in report.get("server_view") or []}
    head = "| SLO | objective | client good / total | client | verdict |"
    if server:
        head += " server (run window) | server verdict | server record |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for v in report["verdicts"]:
        row = (f"| {v['slo']} | {_pct(v['objective'])} | {v['good']} / {v['total']} | "
               f"{_pct(v['good_ratio'])} | **{v['status']}** |")
        if server:
            s = server.get(v["slo"], {})
            record = s.get("record_error_ratio")
            events = s.get("events")
            shown = _pct(s.get("good_ratio")) + ("*" if s.get("note") else "")
            shown += f" (~{events:.0f} events)" if events is not None else ""
            row += (f" {shown} | {s.get('status', '-')} | "
                    f"{_pct(None if record is None else 1 - record)} ({s.get('record', '')}) |")
        lines.append(row)
    notes = [f"\\* {s['slo']}: {s['note']}." for s in server.values() if s.get("note")]
    notes += [f"{s['slo']}: Prometheus query failed: {s['error']}" for s in server.values()
              if s.get("error")]
    if server:
        notes.insert(0, "Server view: the SLO's own errors and total expressions over the run"
                        " window (a ratio of rates equals the ratio of increases); record: the"
                        " recording rule of the closest window.")
    lines += [""] + [f"{n}\n" for n in notes]
    lines += [f"Exit code: **{report['exit_code']}** (0: every SLO held, 1: a breach,"
              " 3: an SLO had no data).", ""]
    if report["errors"]:
        lines += ["## Errors", "", "| kind | count |", "|---|---|"]
        lines += [f"| {kind} | {n} |" for kind, n in report["errors"].items()]
        lines.append("")
    if "find_max" in report:
        fm = report["find_max"]
        lines += ["## Capacity search", "",
                  f"Highest rate that held: **{_cell(fm['max_rate_held'])}/s** (stages of"
                  f" {fm['stage_s']:g}s from {fm['start']:g}/s in steps of {fm['step']:g}/s).",
                  "", "| rate | achieved | submit p99 ms | e2e p99 ms | keep-up | result |",
                  "|---|---|---|---|---|---|"]
        for s in fm["stages"]:
            lines.append(f"| {s['rate']:g} | {_cell(s['requests']['achieved_rate'])} | "
                         f"{_cell(s['latency_ms']['submit']['p99_ms'])} | "
                         f"{_cell(s['latency_ms']['end_to_end']['p99_ms'])} | "
                         f"{_pct(s['keep_up_ratio'])} | {s['reason']} |")
        lines.append("")
    if images:
        lines += ["## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images] + [""]
    return "\n".join(lines)


def write_report(directory: Path, report: dict[str, Any]) -> list[Path]:
    """Write ``report.json``, the plots and ``report.md`` into ``directory``."""
    try:  # matplotlib only when a report is asked for
        from loadtest.plots import write_plots
    except ImportError as exc:
        raise MissingExtra("orchestrator loadtest --report-dir (its plots)", "loadtest",
                           exc) from exc

    directory.mkdir(parents=True, exist_ok=True)
    images = write_plots(directory, report)
    json_path = directory / "report.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = directory / "report.md"
    md_path.write_text(markdown(report, [p.name for p in images]))
    return [json_path, md_path, *images]
