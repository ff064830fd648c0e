"""Prometheus rules from the thresholds and SLOs: one alert per threshold and severity, plus the
SLO recording rules and burn-rate alerts (in one group, so they evaluate in order)."""

from __future__ import annotations

from typing import Any

from alerts.links import LOCAL, Deployment
from alerts.model import Severity, Slo, Threshold, fill
from alerts.slos import (
    BURN_RATE_WINDOWS,
    MIN_EVENTS,
    RATE_WINDOWS,
    SLOS,
    alert_name,
    ratio_record,
    raw_error_ratio,
    window_seconds,
)
from alerts.thresholds import THRESHOLDS

SERVICE = "orchestrator"
ALERTS_GROUP = "orchestrator-alerts"
"""The threshold alerts."""
SLOS_GROUP = "orchestrator-slos"
"""The SLO recording rules and the burn-rate alerts that read them (one group: they evaluate
in order)."""


def threshold_rule(threshold: Threshold, severity: Severity, value: float,
                   deployment: Deployment = LOCAL) -> dict[str, Any]:
    shown = threshold.formatted(value)
    return {
        "alert": threshold.alert,
        "expr": fill(threshold.expr, value=_promql_number(value)),
        "for": threshold.for_,
        "labels": {"severity": severity.value, "priority": severity.priority,
                   "service": SERVICE, "scenario": str(threshold.scenario.number)},
        "annotations": {
            "summary": fill(threshold.summary, value=shown, for_=threshold.for_),
            "description": fill(threshold.description, value=shown, for_=threshold.for_),
            "runbook_url": deployment.runbook_url(threshold.alert),
            "dashboard_url": deployment.dashboard_url(threshold.panel),
        },
    }


def slo_recording_rules(slo: Slo) -> list[dict[str, Any]]:
    return [{"record": ratio_record(window), "expr": raw_error_ratio(slo, window),
             "labels": {"slo": slo.name}}
            for window in RATE_WINDOWS]


def slo_alert_rules(slo: Slo, deployment: Deployment = LOCAL) -> list[dict[str, Any]]:
    budget = 1 - slo.objective
    rules = []
    for severity in (Severity.CRITICAL, Severity.WARNING):
        windows = [w for w in BURN_RATE_WINDOWS if w.severity is severity]
        clauses = [
            f'({ratio_record(w.long)}{{slo="{slo.name}"}} > {w.factor:g} * {budget:g}'
            f' and {ratio_record(w.short)}{{slo="{slo.name}"}} > {w.factor:g} * {budget:g}'
            f" and on () ({fill(slo.total, window=w.long)}) * {window_seconds(w.long):g}"
            f" >= {MIN_EVENTS})"
            for w in windows]
        pairs = " or ".join(f"{w.factor:g}x over {w.long}/{w.short}" for w in windows)
        rules.append({
            "alert": alert_name(slo),
            "expr": " or ".join(clauses),
            "for": windows[0].for_,
            "labels": {"severity": severity.value, "priority": severity.priority,
                       "service": SERVICE, "scenario": str(slo.scenario.number),
                       "slo": slo.name},
            "annotations": {
                "summary": f"The {slo.name} SLO ({slo.objective:.3%}) burns its error budget"
                           f" too fast",
                "description": f"{slo.description} The error budget burns at {pairs} the"
                               f" sustainable rate (over at least {MIN_EVENTS} events).",
                "runbook_url": deployment.runbook_url(alert_name(slo)),
                "dashboard_url": deployment.dashboard_url(slo.panel),
            },
        })
    return rules


def rule_groups(deployment: Deployment = LOCAL) -> dict[str, Any]:
    """Every rule, its links at ``deployment`` (the committed file: the local defaults)."""
    alerts = [threshold_rule(t, severity, value, deployment)
              for t in THRESHOLDS for severity, value in deployment.levels(t)]
    slo_rules: list[dict[str, Any]] = []
    for slo in SLOS:
        slo_rules += slo_recording_rules(slo)
    for slo in SLOS:
        slo_rules += slo_alert_rules(slo, deployment)
    return {"groups": [
        {"name": ALERTS_GROUP, "rules": alerts},
        {"name": SLOS_GROUP, "rules": slo_rules},
    ]}


def rule_group(name: str, deployment: Deployment = LOCAL) -> dict[str, Any]:
    """One group as a rule file of its own."""
    return {"groups": [g for g in rule_groups(deployment)["groups"] if g["name"] == name]}


def _promql_number(value: float) -> str:
    """Plain decimal notation (``1073741824``, ``0.95``), never an exponent."""
    return format(value, "f").rstrip("0").rstrip(".") or "0"
