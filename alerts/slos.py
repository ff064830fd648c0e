"""Service-level objectives, alerted with multi-window, multi-burn-rate rules (the SRE workbook):
page when 2% of a 30-day budget burns in an hour or 5% in six hours; ticket when 10% burns in
three days or a slow 1x burn holds."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from alerts import scenarios as sc
from alerts.model import Runbook, Severity, Slo, fill
from alerts.thresholds import API_ROUTES, ESCALATE_P1, PRODUCTION_AGENTS, PSQL
from catalog import metrics as m
from catalog import names, panels
from catalog.metrics import series_name as s
from service.durations import duration_s


@dataclass(frozen=True)
class WaitClass:
    """Agent types held to one queue-wait target: a task should start within ``target_s`` of
    becoming due (a bucket bound of the queue-wait histogram)."""

    name: str
    target_s: float
    agents: tuple[str, ...]
    """Its agent types; empty: every type no other class names."""
    description: str

    @property
    def bucket(self) -> str:
        """The ``le`` label of the target's bucket exactly as prometheus-client writes it."""
        return str(floatToGoString(self.target_s))  # type: ignore[no-untyped-call]


FAST_WAIT = WaitClass("fast", 1.0, names.FAST_AGENTS,
                      "agents that answer in milliseconds (" + ", ".join(names.FAST_AGENTS) + ")")
MODEL_WAIT = WaitClass("model", 10.0, (), "agents that wait on models (llm and every other type)")
QUEUE_WAIT_CLASSES = (FAST_WAIT, MODEL_WAIT)
"""A no-op task waiting 10 s is an outage, a model call waiting 1 s is not: one target each."""
QUEUE_WAIT_TARGET_S = MODEL_WAIT.target_s
"""The target of an agent type no class names (the default class)."""


def wait_class(agent: str) -> WaitClass:
    return next((c for c in QUEUE_WAIT_CLASSES if agent in c.agents), MODEL_WAIT)


def _class_selector(wait: WaitClass) -> str:
    if wait.agents:
        return f'{PRODUCTION_AGENTS},agent=~"{"|".join(map(re.escape, wait.agents))}"'
    named = [a for c in QUEUE_WAIT_CLASSES for a in c.agents]
    return f'{PRODUCTION_AGENTS},agent!~"{"|".join(map(re.escape, named))}"'


def _late(wait: WaitClass) -> str:
    """Attempts of the class that started later than its target, per second over a window."""
    selector = _class_selector(wait)
    return (f"((sum(rate({s(m.QUEUE_WAIT, '_count')}{{{selector}}}[{{window}}])) -"
            f" sum(rate({s(m.QUEUE_WAIT, '_bucket')}{{{selector},le=\"{wait.bucket}\"}}"
            "[{window}]))) or vector(0))")



@dataclass(frozen=True)
class BurnRateWindow:
    """Fire when the error ratio exceeds ``factor`` x budget over both windows."""

    long: str
    short: str
    factor: float
    severity: Severity
    for_: str


BURN_RATE_WINDOWS = (
    BurnRateWindow("1h", "5m", 14.4, Severity.CRITICAL, "2m"),
    BurnRateWindow("6h", "30m", 6.0, Severity.CRITICAL, "15m"),
    BurnRateWindow("1d", "2h", 3.0, Severity.WARNING, "1h"),
    BurnRateWindow("3d", "6h", 1.0, Severity.WARNING, "3h"),
)
RATE_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
MIN_EVENTS = 100
"""A burn rate counts only over at least this many events in its long window: in a quiet hour
a handful of late or failed tasks is a large ratio (a short outage of a demo stack would page
twice: once for the fault, again for its backlog); the threshold alerts name such outages."""

_BURN_RUNBOOK_DIAGNOSE = ("orchestrator tasks --status dead --limit 20", "orchestrator agents",
                          "curl -sS --max-time 5 {api}/health/ready")
_DEMO = (f" The demo agents that fail or stall on purpose ({', '.join(names.DEMO_AGENTS)})"
         " are left out: exercises with them burn no budget.")

SLOS: tuple[Slo, ...] = (
    Slo(
        name="api-availability", objective=0.999, metrics=(m.HTTP_REQUESTS,),
        description="99.9% of /v1 requests answer without a server error.",
        errors=f'sum(rate({s(m.HTTP_REQUESTS)}{{{API_ROUTES},status=~"5.."}}[{{window}}]))',
        total=f"sum(rate({s(m.HTTP_REQUESTS)}{{{API_ROUTES}}}[{{window}}]))",
        scenario=sc.HIGH_ERROR_RATE, panel=panels.SLO_API,
        runbook=Runbook(
            meaning="The API's error budget burns faster than the objective allows.",
            impact="Clients see 5xx answers; at this rate the month's budget runs out early.",
            diagnose=_BURN_RUNBOOK_DIAGNOSE,
            mitigate=("Follow ApiErrorRatioHigh; roll back a recent deploy first.",),
            escalate=ESCALATE_P1)),
    Slo(
        name="task-success", objective=0.999,
        metrics=(m.TASKS_DEAD_LETTERED, m.TASKS_SUCCEEDED),
        description="99.9% of finished tasks succeed (the rest go dead)." + _DEMO,
        errors=f"sum(rate({s(m.TASKS_DEAD_LETTERED)}{{{PRODUCTION_AGENTS}}}[{{window}}]))",
        total=(f"((sum(rate({s(m.TASKS_SUCCEEDED)}{{{PRODUCTION_AGENTS}}}[{{window}}]))"
               " or vector(0)) +"
               f" (sum(rate({s(m.TASKS_DEAD_LETTERED)}{{{PRODUCTION_AGENTS}}}[{{window}}]))"
               " or vector(0)))"),
        scenario=sc.HIGH_ERROR_RATE, panel=panels.SLO_TASKS,
        runbook=Runbook(
            meaning="Too many tasks end dead.",
            impact="Clients' work is not done; dead tasks need a fix and a requeue.",
            diagnose=(*_BURN_RUNBOOK_DIAGNOSE, "orchestrator events TASK_ID"),
            mitigate=("Find the failing agent (TaskFailureRatioHigh), fix, then"
                      " orchestrator retry TASK_ID.",),
            escalate=ESCALATE_P1)),
    Slo(
        name="queue-wait", objective=0.99, metrics=(m.QUEUE_WAIT,),
        description="99% of task attempts start soon after becoming due: "
                    + "; ".join(f"within {c.target_s:g}s for {c.description}"
                                for c in QUEUE_WAIT_CLASSES) + "." + _DEMO,
        errors=" + ".join(_late(c) for c in QUEUE_WAIT_CLASSES),
        total=f"sum(rate({s(m.QUEUE_WAIT, '_count')}{{{PRODUCTION_AGENTS}}}[{{window}}]))",
        scenario=sc.PROCESSING_STALLED, panel=panels.SLO_QUEUE_WAIT,
        runbook=Runbook(
            meaning="Tasks wait too long for a worker.",
            impact="End-to-end latency is out of objective.",
            diagnose=("orchestrator agents", "rabbitmqctl list_queues name messages consumers",
                      f"{PSQL} \"SELECT agent, count(*) FROM tasks WHERE status = 'queued'"
                      " GROUP BY 1\""),
            mitigate=("Add agent processes; check for a stalled pipeline.",),
            escalate=ESCALATE_P1)),
)


def alert_name(slo: Slo) -> str:
    return "Slo" + "".join(part.capitalize() for part in slo.name.split("-")) + "BudgetBurn"


def ratio_record(window: str) -> str:
    """The recording rule holding an SLO's error ratio over ``window``."""
    return f"orchestrator:slo_error_ratio:rate{window}"


def raw_error_ratio(slo: Slo, window: str) -> str:
    """PromQL for the SLO's error ratio over ``window`` from the counters: no bad event yet is
    a ratio of 0 (a counter never incremented has no series), no event at all is no data."""
    return (f"(({fill(slo.errors, window=window)}) or vector(0))"
            f" / ({fill(slo.total, window=window)})")


def window_seconds(window: str) -> float:
    """``"30m"`` -> 1800."""
    return duration_s(window)
