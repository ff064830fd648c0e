"""SLO verdicts of a run, from the SLO objects in :mod:`alerts.slos` (never retyped numbers).

The client's view of each SLO:

- ``api-availability``: submits answered without a 5xx, over all submits; a connection error or
  a timeout is an answer that never came, so it counts as bad (the server cannot see those);
- ``task-success``: succeeded over finished (succeeded + dead) tasks;
- ``queue-wait``: tasks that started within the queue-wait target (``started_at - created_at``
  of the task) over started tasks, plus tasks that never started and had already waited longer
  than the target when the run stopped waiting (those are known to be bad). For a task that was
  retried, ``started_at`` is the start of its last attempt, so its wait includes the backoff.

A verdict is ``pass`` when the good fraction is at least the objective, ``breach`` when below,
and ``no-data`` when the run produced no event for the SLO.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alerts.model import Slo
from alerts.slos import QUEUE_WAIT_CLASSES, SLOS
from loadtest.stats import RunStats

PASS = "pass"
BREACH = "breach"
NO_DATA = "no-data"

EXIT_OK = 0
EXIT_BREACH = 1
EXIT_INCONCLUSIVE = 3
"""An SLO had no events to judge (e.g. no task was accepted): a gate must not pass on that."""


@dataclass(frozen=True)
class Verdict:
    """One SLO judged on what the client saw."""

    slo: str
    objective: float
    good: int
    total: int
    status: str
    detail: str

    @property
    def ratio(self) -> float | None:
        return self.good / self.total if self.total else None

    def to_json(self) -> dict[str, Any]:
        return {"slo": self.slo, "objective": self.objective, "good": self.good,
                "total": self.total, "good_ratio": self.ratio, "status": self.status,
                "detail": self.detail}


def _availability(stats: RunStats, _target: float | None) -> tuple[int, int, str]:
    total = stats.answered + sum(stats.errors[k] for k in ("connection", "timeout"))
    return total - stats.unavailable, total, "submits answered without a 5xx / lost request"


def _task_success(stats: RunStats, _target: float | None) -> tuple[int, int, str]:
    return stats.tasks["succeeded"], stats.finished, "succeeded / (succeeded + dead) tasks"


def _queue_wait(stats: RunStats, target: float | None) -> tuple[int, int, str]:
    classes = ", ".join(f"{c.target_s:g}s for {c.name} agents" for c in QUEUE_WAIT_CLASSES)
    label = (f"{target:g}s (drill override; the SLO says {classes})" if target is not None
             else classes)
    return (stats.queue_wait_good, stats.queue_wait_total,
            f"tasks started within {label} of submission")


MEASURES: dict[str, Callable[[RunStats, float | None], tuple[int, int, str]]] = {
    "api-availability": _availability,
    "task-success": _task_success,
    "queue-wait": _queue_wait,
}
"""How the client measures each SLO of :data:`alerts.slos.SLOS`, by SLO name."""


def judge(slo: Slo, good: int, total: int, detail: str) -> Verdict:
    """Compare a good/total count with the SLO's objective."""
    status = NO_DATA if total == 0 else PASS if good / total >= slo.objective else BREACH
    return Verdict(slo.name, slo.objective, good, total, status, detail)


def verdicts(stats: RunStats, slos: tuple[Slo, ...] = SLOS) -> list[Verdict]:
    """A verdict for every SLO the client can measure (an SLO without a client-side measure is
    left out rather than guessed)."""
    return [judge(slo, *MEASURES[slo.name](stats, stats.queue_wait_target_s))
            for slo in slos if slo.name in MEASURES]


def exit_code(results: list[Verdict]) -> int:
    """0 when every SLO held, 1 on any breach, 3 when an SLO could not be judged."""
    if any(v.status == BREACH for v in results):
        return EXIT_BREACH
    if any(v.status == NO_DATA for v in results) or not results:
        return EXIT_INCONCLUSIVE
    return EXIT_OK
