"""``orchestrator report [--since 12h]``: the shift report for a handoff or the weekly review.

Pages fired and resolved (the page inbox's record when this machine runs the stack, else
Prometheus' ``ALERTS`` history; what fires now from Alertmanager), the budget left of each SLO
(Prometheus), throughput and failure ratio per agent, the slowest agents and dead letters by
reason (the API's ``/v1/admin/report``), and the capacity headroom: the busiest minute seen
against the last ``orchestrator loadtest --find-max``. Markdown by default, ``--json``.
A source that does not answer is named in the report, not fatal.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from loadtest.capacity import last_capacity
from operations.monitoring import Monitoring, monitoring
from orchestrator.client import Client
from orchestrator.output import markdown_table
from service.durations import duration_s
from service.settings import Settings
from stack.page_inbox import Inbox

TIMEOUT_S = 5.0
MONTH = "30d"


def _when(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(
        timespec="seconds")


def inbox_pages(store: Path, start: float) -> list[dict[str, Any]]:
    """Each incident the inbox was paged for (trigger to resolve, by dedup key) that was open
    at some time after ``start``."""
    pages: list[dict[str, Any]] = []
    open_by_key: dict[str, dict[str, Any]] = {}
    for entry in Inbox(store).entries():
        event, at = entry["event"], float(entry["received_at"])
        key = str(event.get("dedup_key") or "")
        if event.get("event_action") == "trigger" and key not in open_by_key:
            payload = event.get("payload") or {}
            details = payload.get("custom_details") or {}
            page = {"alert": payload.get("summary") or details.get("summary") or key,
                    "severity": payload.get("severity"), "scenario": details.get("scenario"),
                    "fired_at": at, "resolved_at": None, "runbook": details.get("runbook_url")}
            open_by_key[key] = page
            pages.append(page)
        elif event.get("event_action") == "resolve" and key in open_by_key:
            open_by_key.pop(key)["resolved_at"] = at
    return [p for p in pages if p["resolved_at"] is None or p["resolved_at"] >= start]


def prometheus_pages(prometheus: str, start: float, end: float) -> list[dict[str, Any]]:
    """The same from Prometheus' ``ALERTS`` series: critical alerts (the ones that page)."""
    step = max(15.0, (end - start) / 1000)
    answer = httpx.get(f"{prometheus}/api/v1/query_range", timeout=TIMEOUT_S, params={
        "query": 'ALERTS{alertstate="firing",severity="critical"}', "start": start,
        "end": end, "step": step}).json()
    pages = []
    for series in answer["data"]["result"]:
        labels = series["metric"]
        times = [float(t) for t, _ in series["values"]]
        began = times[0]
        for before, after in zip(times, [*times[1:], None], strict=True):
            if after is None or after - before > 2 * step:
                pages.append({"alert": labels.get("alertname"), "severity": "critical",
                              "scenario": labels.get("scenario"), "fired_at": began,
                              "resolved_at": None if end - before <= 2 * step else before,
                              "runbook": None})
                if after is not None:
                    began = after
    return sorted(pages, key=lambda p: p["fired_at"])


def firing_now(alertmanager: str) -> list[dict[str, Any]]:
    alerts = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=TIMEOUT_S, params={
        "active": "true", "silenced": "false", "inhibited": "false"}).json()
    return [{"alert": a["labels"].get("alertname"), "severity": a["labels"].get("severity"),
             "since": a.get("startsAt")} for a in alerts]


def slo_budgets(prometheus: str, window_s: float) -> list[dict[str, Any]]:
    """Each SLO's error ratio and budget left over the report's window and over 30 days (as
    far back as Prometheus holds data)."""
    from alerts.slos import SLOS, raw_error_ratio  # loads prometheus-client: not at import

    out = []
    for slo in SLOS:
        allowed = 1 - slo.objective
        row: dict[str, Any] = {"slo": slo.name, "objective": slo.objective}
        for label, window in (("window", f"{int(window_s)}s"), ("month", MONTH)):
            result = httpx.get(f"{prometheus}/api/v1/query", timeout=TIMEOUT_S, params={
                "query": raw_error_ratio(slo, window)}).json()["data"]["result"]
            ratio = float(result[0]["value"][1]) if result else None
            if ratio is not None and ratio != ratio:  # NaN: no event in the window
                ratio = None
            row[f"{label}_error_ratio"] = ratio
            row[f"{label}_budget_left"] = None if ratio is None else round(1 - ratio / allowed, 4)
        out.append(row)
    return out


def _monitored(where: Monitoring, settings: Settings, start: float,
               end: float) -> dict[str, Any]:
    found: dict[str, Any] = {"sources": {}, "unavailable": []}
    store = settings.stack_dir / "pages.jsonl"
    if store.exists():
        found["pages"], found["sources"]["pages"] = inbox_pages(store, start), str(store)
    else:
        try:
            found["pages"] = prometheus_pages(where.prometheus, start, end)
            found["sources"]["pages"] = f"{where.prometheus} (ALERTS)"
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            found["pages"] = None
            found["unavailable"].append(f"pages: Prometheus at {where.prometheus}: {exc}")
    for key, read, url in (("firing_now", firing_now, where.alertmanager),
                           ("slos", lambda u: slo_budgets(u, end - start), where.prometheus)):
        try:
            found[key] = read(url)
            found["sources"][key] = url
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            found[key] = None
            found["unavailable"].append(f"{key}: {url}: {type(exc).__name__} {exc}")
    return found


def gather(client: Client, settings: Settings, window_s: float) -> dict[str, Any]:
    data = client.call("GET", "/v1/admin/report", params={"since_s": window_s})
    end = time.time()
    report = {**data, **_monitored(monitoring(settings), settings, end - window_s, end)}
    capacity = last_capacity(settings.state_dir)
    peak = data["peak_submitted_per_s"]
    report["capacity"] = None if capacity is None else {
        **capacity, "headroom": round(capacity["max_rate_held"] / peak, 2) if peak else None}
    return report


def run(client: Client, settings: Settings, since: str, as_json: bool) -> int:
    try:
        window_s = duration_s(since)
    except ValueError as exc:
        print(f"error: --since: {exc}", file=sys.stderr)
        return 2
    report = gather(client, settings, window_s)
    print(json.dumps(report, indent=2, sort_keys=True) if as_json else markdown(report, since))
    return 0


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} s"


def markdown(report: dict[str, Any], since: str) -> str:
    lines = [f"# Shift report: the last {since}", "",
             f"{report['start'][:19]}Z to {report['end'][:19]}Z", "", "## Pages", ""]
    pages = report.get("pages")
    if pages is None:
        lines.append("(no record of pages could be read)")
    else:
        lines += markdown_table([{**p, "fired_at": _when(p["fired_at"]),
                                  "resolved_at": _when(p["resolved_at"]) or "still open"}
                                 for p in pages],
                                ["alert", "severity", "scenario", "fired_at", "resolved_at"])
        lines.append(f"\n{len(pages)} pages, {sum(p['resolved_at'] is None for p in pages)}"
                     f" unresolved (from {report['sources'].get('pages')})")
    if report.get("firing_now") is not None:
        firing = ", ".join(f"{a['alert']} ({a['severity']})" for a in report["firing_now"])
        lines.append(f"\nFiring now (Alertmanager): {firing or 'nothing'}")
    lines += ["", "## SLO budget", ""]
    if report.get("slos") is None:
        lines.append("(Prometheus did not answer)")
    else:
        lines += markdown_table([{
            "slo": r["slo"], "objective": f"{r['objective']:.2%}",
            f"errors {since}": _ratio(r["window_error_ratio"]),
            f"budget left {since}": _ratio(r["window_budget_left"]),
            f"errors {MONTH}": _ratio(r["month_error_ratio"]),
            f"budget left {MONTH}": _ratio(r["month_budget_left"])} for r in report["slos"]],
            ["slo", "objective", f"errors {since}", f"budget left {since}", f"errors {MONTH}",
             f"budget left {MONTH}"])
    agents = report["agents"]
    lines += ["", "## Throughput and failures per agent", ""]
    lines += markdown_table([{**a, "failure_ratio": _ratio(a["failure_ratio"])} for a in agents],
                            ["agent", "submitted", "succeeded", "dead", "cancelled",
                             "finished_per_s", "failure_ratio"])
    lines += ["", "## Slowest agents", ""]
    slowest = sorted((a for a in agents if a["run_p95_s"] is not None),
                     key=lambda a: -a["run_p95_s"])
    lines += markdown_table([{**a, **{k: _s(a[k]) for k in ("run_p50_s", "run_p95_s",
                                                            "end_to_end_p95_s")}}
                             for a in slowest],
                            ["agent", "run_p50_s", "run_p95_s", "end_to_end_p95_s"])
    lines += ["", "## Dead letters by reason", ""]
    lines += markdown_table(report["dead_letters"], ["agent", "reason", "count", "replayed"])
    lines += ["", "## Capacity headroom", "",
              f"Busiest minute: {report['peak_submitted_per_s']:g} submissions/s,"
              f" {report['peak_finished_per_s']:g} finished/s."]
    capacity = report.get("capacity")
    if capacity is None:
        lines.append("No capacity measured here yet: run orchestrator loadtest --find-max.")
    else:
        headroom = capacity["headroom"]
        lines.append(f"Last loadtest --find-max ({_when(capacity['measured_at'])}) held"
                     f" {capacity['max_rate_held']:g}/s: headroom"
                     f" {'-' if headroom is None else f'{headroom:g}x'} the busiest minute.")
    if report["unavailable"]:
        lines += ["", "Not available: " + "; ".join(report["unavailable"])]
    return "\n".join(lines)
