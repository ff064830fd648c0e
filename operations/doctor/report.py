"""Tree 0 (what is failing, since when, which agents) and the doctor's report: a short "all
clear" when nothing is wrong, else the findings ranked by severity, each with its scenario, the
tree path, the evidence and the runbook section to open; ``--json`` for machines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alerts.links import Deployment
from alerts.model import Scenario
from alerts.slos import SLOS, alert_name
from alerts.thresholds import THRESHOLDS
from operations.doctor.engine import Diagnosis, Finding, walk
from operations.doctor.facts import Facts, gather
from operations.doctor.trees import TREES, stalled_agents
from service.settings import Settings
from stack.supervisor import load_record

ALERT_SCENARIOS: dict[str, Scenario] = {
    **{t.alert: t.scenario for t in THRESHOLDS},
    **{alert_name(slo): slo.scenario for slo in SLOS},
}


@dataclass
class Report:
    facts: Facts
    diagnosis: Diagnosis
    deployment: Deployment

    @property
    def healthy(self) -> bool:
        return not self.diagnosis.findings

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else 1


def explain_firing(facts: Facts, diagnosis: Diagnosis) -> None:
    """Tree 0: every alert Alertmanager reports firing is a finding; one the trees did not
    reach is added with the alert as its evidence."""
    named = {f.alert: f for f in diagnosis.findings}
    for alert in facts.monitoring.firing:
        line = f"Alertmanager: {alert['alert']} firing since {alert['since']}"
        finding = named.get(alert["alert"])
        if finding is None:
            scenario = ALERT_SCENARIOS.get(alert["alert"])
            if scenario is None:
                continue
            finding = named[alert["alert"]] = Finding(
                scenario, alert["alert"], "Alertmanager reports it firing.",
                ["tree 0 (what is failing): firing in Alertmanager"])
            diagnosis.findings.append(finding)
        if line not in finding.evidence:
            finding.evidence.append(line)
    diagnosis.findings.sort(key=lambda f: (f.severity.value != "critical", f.scenario.number))


async def diagnose(settings: Settings) -> Report:
    facts = await gather(settings)
    diagnosis = walk(TREES, facts)
    explain_firing(facts, diagnosis)
    record = load_record(settings.stack_dir)
    if record is not None and "Runbook" in record.urls and not settings.api.runbook_url:
        settings = settings.with_overrides(runbook_url=record.urls["Runbook"])  # the stack's
    return Report(facts, diagnosis, Deployment.from_settings(settings))


def _all_clear(facts: Facts) -> str:
    parts = ["API ready"]
    if facts.database.connections:
        used, most = facts.database.connections
        parts.append(f"PostgreSQL ({used}/{most} connections,"
                     f" SELECT 1 in {(facts.database.latency_s or 0) * 1000:.1f} ms)")
    parts.append(f"RabbitMQ ({len(facts.broker.queues)} queues)")
    parts.append(f"Redis ({(facts.redis.latency_s or 0) * 1000:.1f} ms)")
    live = facts.tasks.live_workers
    parts.append(f"{_count(len(live), 'live worker')} for"
                 f" {_count(len(facts.tasks.deployed), 'deployed agent type')}")
    waiting = sum(counts.get("queued", 0) + counts.get("retrying", 0)
                  for counts in facts.tasks.by_status.values())
    running = sum(counts.get("running", 0) for counts in facts.tasks.by_status.values())
    parts.append(f"{waiting} tasks waiting, {running} running, outbox"
                 f" {facts.tasks.outbox_unpublished}")
    if facts.monitoring.prometheus_up:
        parts.append("Prometheus scrapes every target")
    if facts.monitoring.alertmanager_up:
        parts.append("no alert firing")
    if facts.disks:
        parts.append("disk " + ", ".join(f"{name} {u.free_ratio * 100:.0f}% free"
                                          for name, u in sorted(facts.disks.items())))
    return "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def human(report: Report) -> str:
    facts, diagnosis = report.facts, report.diagnosis
    if report.healthy:
        lines = [f"all clear (checked in {facts.seconds:.1f}s): {_all_clear(facts)}"]
    else:
        critical = sum(1 for f in diagnosis.findings if f.severity.value == "critical")
        lines = [f"{len(diagnosis.findings)} findings ({critical} critical), checked in"
                 f" {facts.seconds:.1f}s"]
        if facts.monitoring.firing:
            lines.append("firing: " + ", ".join(f"{a['alert']} since {a['since']}"
                                                for a in facts.monitoring.firing))
        affected = _affected_agents(facts)
        if affected:
            lines.append("agents affected: " + ", ".join(affected))
        for finding in diagnosis.findings:
            lines += ["", f"{finding.severity.value.upper():9} scenario {finding.scenario.number}"
                          f" · {finding.scenario.title} ({finding.scenario.priority})",
                      f"  {finding.conclusion}"]
            lines += [f"  path:     {path}" for path in finding.paths]
            lines += [f"  evidence: {line}" for line in finding.evidence]
            lines.append(f"  runbook:  {report.deployment.runbook_url(finding.alert)}")
    for why, questions in diagnosis.unknown.items():
        lines += ["", f"could not tell, {why}:"] + [f"  {q}" for q in questions]
    return "\n".join(lines)


def _affected_agents(facts: Facts) -> list[str]:
    try:
        waiting = stalled_agents(facts)
    except Exception:  # the facts cannot tell (database down)
        return []
    return [line.split(":", 1)[0] for line in waiting]


def as_json(report: Report) -> dict[str, Any]:
    facts = report.facts
    return {
        "status": "all clear" if report.healthy else "problems",
        "seconds": round(facts.seconds, 3),
        "findings": [{
            "severity": f.severity.value, "scenario": f.scenario.number,
            "scenario_title": f.scenario.title, "priority": f.scenario.priority,
            "alert": f.alert, "conclusion": f.conclusion, "paths": f.paths,
            "evidence": f.evidence, "runbook": report.deployment.runbook_url(f.alert),
        } for f in report.diagnosis.findings],
        "unknown": report.diagnosis.unknown,
        "firing": [{k: v for k, v in a.items() if k != "labels"}
                   for a in facts.monitoring.firing],
        "summary": None if not report.healthy else _all_clear(facts),
    }
