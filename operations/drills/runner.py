"""Runs drills on drill stacks and reports them: per drill, the fault, the alerts that must
notify (and nothing critical beside them but its consequences), the runbook link, what
``orchestrator doctor`` names, the mitigation, and the resolve."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alerts.links import anchor
from operations.doctor.report import diagnose
from operations.drills.drills import Drill
from operations.drills.harness import (
    DRILL_CAPACITY,
    DRILL_TIMINGS,
    DrillStack,
    Notification,
    runbook_answers,
    wait_until,
)

QUIET_TIMEOUT_S = 90.0
FIRE_TIMEOUT_S = 90.0
RESOLVE_TIMEOUT_S = 120.0


@dataclass
class Outcome:
    drill: str
    scenario: int
    alerts: list[str]
    fault_to_page_s: float | None = None
    doctor: str = ""
    recovery_to_resolve_s: float | None = None
    passed: bool = False
    problems: list[str] = field(default_factory=list)
    unrelated: list[str] = field(default_factory=list)
    """Critical threshold alerts that notified beside the drill's own (a failure)."""
    slo_burns: list[str] = field(default_factory=list)
    """SLO burn-rate alerts that notified: they integrate errors over hours, so on a stack
    shared by drills one drill's errors burn on into the next; reported, not judged."""


def _quiet(stack: DrillStack, drill: Drill) -> dict[str, str]:
    """Wait until no critical threshold alert and none of the drill's own notifies (the
    previous drill's resolved; SLO burn alerts look back hours, so they are not waited out:
    firing before the fault, they do not count against the drill); return what still does."""
    def calm() -> bool:
        firing = stack.firing()
        return not any((severity == "critical" and not name.startswith("Slo"))
                       or name in drill.alerts for name, severity in firing.items())
    with contextlib.suppress(TimeoutError):
        wait_until(calm, QUIET_TIMEOUT_S, "quiet", interval_s=1)
    return stack.firing()


def run_drill(stack: DrillStack, drill: Drill) -> Outcome:
    outcome = Outcome(drill.name, drill.scenario.number, list(drill.alerts))
    if drill.needs_root and not stack.scratch_mounted:
        outcome.problems.append("needs root (to mount the small filesystem it fills)")
        return outcome
    before = _quiet(stack, drill)
    state: dict[str, Any] = {}
    wanted = {anchor(a) for a in drill.alerts}
    allowed = {*drill.alerts, *drill.tolerated, *before}
    seen_critical: set[str] = set()
    slo_notified: set[str] = set()

    def watch() -> None:
        for name, severity in stack.firing().items():
            if name.startswith("Slo"):  # budgets over hours: a shared stack carries them over
                slo_notified.add(name)
            elif severity == "critical" and name not in allowed:
                seen_critical.add(name)

    fault_at = time.time()
    try:
        drill.inject(stack, state)
        triggers = wait_until(lambda: _first(stack, fault_at, wanted, "trigger", watch),
                              FIRE_TIMEOUT_S, f"{', '.join(drill.alerts)} to notify")
        outcome.fault_to_page_s = round(min(n.at for n in triggers) - fault_at, 1)
        for notification in triggers:
            if not runbook_answers(notification.runbook_url):
                outcome.problems.append(f"runbook link {notification.runbook_url!r} does not"
                                        " answer with its section")
        report = asyncio.run(diagnose(stack.settings))
        named = sorted({f.scenario.number for f in report.diagnosis.findings})
        outcome.doctor = ("names " if drill.scenario.number in named else "MISSES ") + \
            f"{drill.scenario.number} (found {', '.join(map(str, named)) or 'nothing'})"
        if drill.scenario.number not in named:
            outcome.problems.append(f"orchestrator doctor did not name scenario"
                                    f" {drill.scenario.number}; it found {named}")
        watch()
        recovery_at = time.time()
        drill.mitigate(stack, state)
        resolves = wait_until(lambda: _first(stack, recovery_at, wanted, "resolve", watch),
                              RESOLVE_TIMEOUT_S, f"{', '.join(drill.alerts)} to resolve")
        outcome.recovery_to_resolve_s = round(max(n.at for n in resolves) - recovery_at, 1)
    except Exception as exc:  # a drill that fails says why, and the next one still runs
        outcome.problems.append(f"{type(exc).__name__}: {exc}")
        (stack.root / f"{drill.name}.traceback").write_text(traceback.format_exc())
        if state and drill.mitigate is not None and outcome.recovery_to_resolve_s is None:
            try:  # leave the stack healthy for the next drill
                drill.mitigate(stack, state)
            except Exception as again:
                outcome.problems.append(f"mitigation failed too: {again}")
    outcome.unrelated = sorted(seen_critical)
    outcome.slo_burns = sorted(slo_notified)
    if seen_critical:
        outcome.problems.append(f"unrelated critical alerts notified: {sorted(seen_critical)}")
    outcome.passed = not outcome.problems
    return outcome


def _first(stack: DrillStack, since: float, wanted: set[str], action: str,
           watch: Any) -> list[Notification]:
    """The first ``action`` notification of each wanted alert since ``since``, once all have
    one (else empty)."""
    watch()
    found: dict[str, Notification] = {}
    for n in stack.notifications(since):
        if n.action == action and n.anchor in wanted and n.anchor not in found:
            found[n.anchor] = n
    return list(found.values()) if set(found) == wanted else []


def run_drills(drills: Sequence[Drill], root: Path, parallel: int = 1,
               on_result: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run ``drills`` on ``parallel`` drill stacks (drills dealt out in turn); outcomes in the
    drills' order."""
    lanes = [list(drills[i::parallel]) for i in range(max(1, parallel))]
    results: dict[str, Outcome] = {}
    lock = threading.Lock()
    stacks: list[DrillStack] = []

    def lane(index: int, assigned: list[Drill]) -> None:
        if not assigned:
            return
        stack = DrillStack(root / f"stack-{index + 1}")
        with lock:
            stacks.append(stack)
        try:
            stack.start()
        except Exception as exc:
            for drill in assigned:
                with lock:
                    results[drill.name] = Outcome(drill.name, drill.scenario.number,
                                                  list(drill.alerts),
                                                  problems=[f"the drill stack did not start:"
                                                            f" {exc}"])
            stack.stop()
            return
        try:
            for drill in assigned:
                outcome = run_drill(stack, drill)
                with lock:
                    results[drill.name] = outcome
                    if on_result is not None:
                        on_result(outcome)
        finally:
            stack.stop()

    threads = [threading.Thread(target=lane, args=(i, assigned), name=f"drill-lane-{i}")
               for i, assigned in enumerate(lanes)]
    for thread in threads:
        thread.daemon = True  # a stop (Ctrl-C, SIGTERM) takes the stacks down below
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        for stack in stacks:
            stack.stop()
        raise
    return [results[d.name] for d in drills if d.name in results]


def table(outcomes: Sequence[Outcome]) -> str:
    rows = [("scenario", "drill", "alert", "fault→page s", "doctor", "recovery→resolve s",
             "result")]
    for o in outcomes:
        rows.append((str(o.scenario), o.drill, ", ".join(o.alerts),
                     "-" if o.fault_to_page_s is None else f"{o.fault_to_page_s:.1f}",
                     o.doctor or "-",
                     "-" if o.recovery_to_resolve_s is None else f"{o.recovery_to_resolve_s:.1f}",
                     "pass" if o.passed else "FAIL"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    for o in outcomes:
        lines += [f"{o.drill}: {problem}" for problem in o.problems]
        if o.slo_burns:
            lines.append(f"{o.drill}: SLO burn alerts notified (not judged): {o.slo_burns}")
    lines.append(f"drill timings: {_settings(DRILL_TIMINGS)}")
    lines.append(f"drill agents: {_settings(DRILL_CAPACITY)} (the workloads are sized for them)")
    return "\n".join(lines)


def _settings(values: dict[str, str]) -> str:
    return ", ".join(f"{k.removeprefix('ORCH_')}={v}" for k, v in values.items())


def as_json(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    return {"passed": all(o.passed for o in outcomes), "timings": DRILL_TIMINGS,
            "capacity": DRILL_CAPACITY,
            "drills": [asdict(o) for o in outcomes]}
