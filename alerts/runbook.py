"""The runbook: one section per alert, built from the same objects as the rules."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import markdown

from alerts.links import LOCAL, Deployment, anchor
from alerts.model import Runbook, Threshold, fill
from alerts.slos import BURN_RATE_WINDOWS, SLOS, alert_name
from alerts.thresholds import THRESHOLDS

DOCTOR = "orchestrator doctor"
"""The first command of every section."""


def _levels(threshold: Threshold, deployment: Deployment) -> str:
    return ", ".join(f"{severity.value} ({severity.priority}) at {threshold.formatted(value)}"
                     for severity, value in deployment.levels(threshold))


def _section(alert: str, facts: list[tuple[str, str]], runbook: Runbook,
             deployment: Deployment, drill: str | None) -> list[str]:
    lines = [f"## {alert}", ""]
    lines += [f"- **{name}:** {value}" for name, value in facts]
    lines += ["", "**What it means.** " + runbook.meaning, "",
              "**Impact.** " + runbook.impact, "",
              "**First commands** (the doctor walks the troubleshooting trees and names the"
              " scenario with its evidence; the rest show this alert's signal by hand):", "",
              "```sh", DOCTOR, *map(deployment.command, runbook.diagnose), "```", "",
              "**Mitigation:**", ""]
    lines += [f"{n}. {step}" for n, step in enumerate(runbook.mitigate, 1)]
    lines += ["", "**Escalation.** " + runbook.escalate, ""]
    lines += [f"**Drill.** `orchestrator drill run {drill}` injects this fault on a stack of its"
              " own and checks this alert's page, the doctor's verdict and the resolve." if drill
              else "**Drill.** None injects this fault yet; promtool tests check the rule on"
              " synthetic series.", ""]
    return lines


def runbook_markdown(header: str, deployment: Deployment = LOCAL,
                     drills: Mapping[str, str] | None = None) -> str:
    """The runbook, its links and commands at ``deployment`` (committed: the local defaults);
    ``drills`` names the drill that proves each alert (alert -> drill)."""
    drills = drills or {}
    lines = [f"<!-- {header} -->", "", "# Orchestrator runbook", "",
             "One section per alert. Every alert's `runbook_url` points at its section here and"
             " its `dashboard_url` at the panel that shows the signal. `critical` alerts page"
             " (P1); `warning` alerts go to chat and a ticket (P2).", "",
             "The first commands are built for this deployment (its API, Prometheus, database,"
             " Redis and RabbitMQ addresses, and the stack's log folder"
             f" `{deployment.logs_dir}`); run them where `orchestrator` is on `PATH` (it uses"
             " `ORCH_API_KEY`, or the key `stack up` made) and as a user `rabbitmqctl` accepts."
             " Replace `TASK_ID`, `AGENT` and `NAME`. They exit 0 on a healthy system; when the"
             " fault is theirs to show, `orchestrator doctor` exits 1 (findings, ranked, each"
             " with its runbook section), `orchestrator stack status` 1 (a process is gone),"
             " `pg_isready` 2 (no answer), `curl` 7 (connection refused) and `rabbitmqctl`"
             " non-zero (broker down).", "",
             "| alert | levels | scenario |", "|---|---|---|"]
    for t in THRESHOLDS:
        lines.append(f"| [{t.alert}](#{anchor(t.alert)}) | {_levels(t, deployment)} |"
                     f" {t.scenario.number}. {t.scenario.title} |")
    for slo in SLOS:
        lines.append(f"| [{alert_name(slo)}](#{anchor(alert_name(slo))}) | critical (P1) and"
                     f" warning (P2) burn rates | {slo.scenario.number}."
                     f" {slo.scenario.title} |")
    lines.append("")
    for t in THRESHOLDS:
        facts = [("Levels", _levels(t, deployment)), ("For", t.for_),
                 ("Scenario", f"{t.scenario.number}. {t.scenario.title} ({t.scenario.priority})"),
                 ("Expression", f"`{fill(t.expr, value='VALUE')}`"),
                 ("Dashboard", f"[{t.panel.title}]({deployment.dashboard_url(t.panel)})")]
        lines += _section(t.alert, facts, t.runbook, deployment, drills.get(t.alert))
    for slo in SLOS:
        windows = "; ".join(f"{w.severity.value}: {w.factor:g}x over {w.long} and {w.short}"
                            for w in BURN_RATE_WINDOWS)
        facts = [("Objective", f"{slo.objective:.3%} over {slo.window}: {slo.description}"),
                 ("Burn-rate alerts", windows),
                 ("Scenario", f"{slo.scenario.number}. {slo.scenario.title}"),
                 ("Dashboard", f"[{slo.panel.title}]({deployment.dashboard_url(slo.panel)})")]
        lines += _section(alert_name(slo), facts, slo.runbook, deployment,
                          drills.get(alert_name(slo)))
    return "\n".join(lines)


@cache
def runbook_html(header: str, deployment: Deployment,
                 drills: tuple[tuple[str, str], ...] = ()) -> str:
    """The runbook as a web page (what ``/runbook`` serves)."""
    body = markdown.markdown(runbook_markdown(header, deployment, dict(drills)),
                             extensions=["tables", "fenced_code", "toc"])
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Orchestrator runbook"
            "</title><style>body{font-family:sans-serif;max-width:60rem;margin:auto}"
            "pre{background:#f4f4f4;padding:.5rem}td,th{border:1px solid #ccc;padding:.2rem}"
            "</style></head><body>" + body + "</body></html>")
