"""The terminal summary of a report: counts, latency table, and the SLO verdicts with the
client's and (when asked) the server's view side by side."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from alerts.slos import QUEUE_WAIT_CLASSES

LATE_WARNING_MS = 50.0
"""Warn when the generator's p99 lateness (actual - intended send time) is above this."""


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.3f}%"


def print_summary(report: dict[str, Any], out: TextIO | None = None) -> None:
    """Print ``report`` (see :func:`loadtest.report.build_report`) for people."""
    out = out or sys.stdout
    cfg, req, tasks = report["config"], report["requests"], report["tasks"]

    def say(line: str = "") -> None:
        print(line, file=out)

    say(f"loadtest: {cfg['profile']} against {cfg['url']}"
        f" (sending {report['sending_s']:.1f}s, {report['elapsed_s']:.1f}s in all)")
    errors = ", ".join(f"{k} {v}" for k, v in report["errors"].items()) or "none"
    say(f"requests  sent {req['sent']}  accepted {req['accepted']}"
        f"  achieved {_num(req['achieved_rate'])}/s (target {_num(req['target_rate'])}/s)")
    say(f"tasks     succeeded {tasks['succeeded']}  dead {tasks['dead']}"
        f"  unfinished {tasks['unfinished']}  completion {_num(tasks['completion_rate'])}/s")
    say(f"errors    {errors}")
    lateness = report["latency_ms"]["lateness"]["p99_ms"]
    if lateness is not None and lateness > LATE_WARNING_MS:
        say(f"warning   the generator sent 1% of its requests more than {lateness:.0f}ms late:"
            " this machine is short of CPU (latencies still count from the intended times)")
    say()
    say(f"{'latency (ms)':<22}{'count':>8}{'p50':>10}{'p90':>10}{'p99':>10}{'p99.9':>10}"
        f"{'max':>10}")
    for name, title in (("submit", "submit"), ("end_to_end", "end-to-end"),
                        ("queue_wait", "queue wait"), ("lateness", "generator lateness")):
        s = report["latency_ms"][name]
        say(f"{title:<22}{s['count']:>8}" + "".join(
            f"{_num(s[k], '{:.2f}'):>10}"
            for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")))
    say()
    server = {v["slo"]: v for v in report.get("server_view") or []}
    if "find_max" in report:
        say(f"SLO verdicts of the last stage ({report['find_max']['stages'][-1]['rate']:g}/s):")
    head = f"{'SLO':<18}{'objective':>10}  {'client good':>24}  {'verdict':<8}"
    if server:
        head += f"| {'server (run window)':>26}  {'verdict':<8}  record"
    say(head)
    for v in report["verdicts"]:
        client = f"{_pct(v['good_ratio'])} ({v['good']}/{v['total']})"
        line = f"{v['slo']:<18}{_pct(v['objective']):>10}  {client:>24}  {v['status']:<8}"
        if server:
            s = server.get(v["slo"], {})
            record = s.get("record_error_ratio")
            events = s.get("events")
            shown = (f"{_pct(s.get('good_ratio'))}{'*' if s.get('note') else ''}"
                     f" (~{events:.0f})" if events is not None else _pct(None))
            line += (f"| {shown:>26}  {s.get('status', '-'):<8}  "
                     f"{_pct(None if record is None else 1 - record)} ({s.get('record', '')})")
        say(line)
    target = cfg["queue_wait_target_s"]
    if target is not None:
        say(f"queue-wait judged against {target:g}s: a DRILL override of the SLO object's"
            " targets (" + ", ".join(f"{c.name} agents {c.target_s:g}s"
                                     for c in QUEUE_WAIT_CLASSES) + ")")
    if server:
        window = next(iter(server.values()))["window_s"]
        say(f"server (run window): the SLO's errors and total expressions over the last"
            f" {window}s (rate ratio = increase ratio; ~events = total x window);"
            " record: the closest recording rule")
        for view in server.values():
            if view.get("error"):
                say(f"  {view['slo']}: Prometheus query failed: {view['error']}")
            elif view.get("note"):
                say(f"  * {view['slo']}: {view['note']}")
    if "find_max" in report:
        fm = report["find_max"]
        say()
        for stage in fm["stages"]:
            say(f"stage {stage['rate']:>8g}/s  achieved {_num(stage['requests']['achieved_rate'])}"
                f"/s  e2e p99 {_num(stage['latency_ms']['end_to_end']['p99_ms'])}ms"
                f"  {stage['reason']}")
        held = fm["max_rate_held"]
        say(f"highest rate that held: {'none' if held is None else f'{held:g}/s'}")
    say(f"exit code {report['exit_code']}")
