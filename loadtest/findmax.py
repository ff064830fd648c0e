"""Capacity search: constant-rate stages at rising rates until one does not hold.

Each stage is a run of its own (``stage_s`` seconds at one rate, then the drain of its tasks),
judged on its own. A stage holds when

1. every SLO verdict passes (:mod:`loadtest.verdicts`), and
2. the pipeline kept up: at least ``keep_up`` of the accepted tasks were final by the end of the
   stage plus a grace of one second more than the median end-to-end time of the first stage
   (the least loaded one). A backlog that grows during a short stage may not yet push waits
   past the queue-wait target, so without this the search would overstate capacity;
   ``keep_up=0`` turns it off.
3. the generator kept up: it sent at least 95% of the target rate (otherwise the client, not the
   orchestrator, was the limit, and the stage says so).

The answer is the highest rate whose stage held.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from loadtest.generator import LoadConfig, RunResult, run_load
from loadtest.profiles import Constant
from loadtest.stats import RunStats
from loadtest.verdicts import PASS, Verdict, verdicts

GENERATOR_MIN_RATIO = 0.95


@dataclass(frozen=True)
class SearchConfig:
    """Where the search starts, how it steps, and where it gives up."""

    start: float
    step: float
    stage_s: float = 30.0
    max_rate: float = 10_000.0
    keep_up: float = 0.95


@dataclass
class Stage:
    """One rate, what it measured, and whether it held."""

    rate: float
    result: RunResult
    verdicts: list[Verdict]
    keep_up: float | None
    held: bool
    reason: str


@dataclass
class SearchResult:
    """Every stage run, and the highest rate that held (None: not even the first)."""

    config: SearchConfig
    stages: list[Stage]

    @property
    def max_rate_held(self) -> float | None:
        held = [s.rate for s in self.stages if s.held]
        return max(held) if held else None


def keep_up_ratio(stats: RunStats, stage_s: float, baseline_s: float) -> float | None:
    """Share of the accepted tasks that were final within ``stage_s`` + ``baseline_s`` + 1 s
    (whole seconds of the series); None when nothing was accepted."""
    if not stats.tracked:
        return None
    limit = math.floor(stage_s + baseline_s + 1.0)
    done = sum(row.completed for second, row in stats.series.items() if second < limit)
    return done / stats.tracked


def judge_stage(rate: float, result: RunResult, keep_up: float, stage_s: float,
                baseline_s: float) -> Stage:
    """Whether one stage held, and why not; ``baseline_s`` is the unloaded end-to-end time."""
    found = verdicts(result.stats)
    ratio = keep_up_ratio(result.stats, stage_s, baseline_s)
    achieved = result.stats.achieved_rate() or 0.0
    reasons = [f"SLO {v.slo}: {v.status}" for v in found if v.status != PASS]
    if keep_up > 0 and (ratio is None or ratio < keep_up):
        shown = "none" if ratio is None else f"{ratio:.1%}"
        reasons.append(f"pipeline fell behind: {shown} of tasks final in time"
                       f" (needs {keep_up:.0%})")
    if achieved < GENERATOR_MIN_RATIO * rate:
        reasons.append(f"generator-limited: sent {achieved:.1f}/s of {rate:g}/s")
    return Stage(rate, result, found, ratio, not reasons, "; ".join(reasons) or "held")


async def find_max(base: LoadConfig, search: SearchConfig,
                   runner: Callable[[LoadConfig], Awaitable[RunResult]] = run_load,
                   on_stage: Callable[[Stage], None] | None = None) -> SearchResult:
    """Run stages at ``start``, ``start + step``, ... until one does not hold (or
    ``max_rate`` is passed)."""
    if search.start <= 0 or search.step <= 0:
        raise ValueError("the search needs a start rate and a step above 0")
    stages: list[Stage] = []
    rate = search.start
    baseline_s: float | None = None
    while rate <= search.max_rate + 1e-9:
        config = replace(base, profile=Constant(rate), duration_s=search.stage_s,
                         max_requests=None)
        result = await runner(config)
        if baseline_s is None:
            baseline_s = result.stats.end_to_end.percentile(0.5) or 0.0
        stage = judge_stage(rate, result, search.keep_up, search.stage_s, baseline_s)
        stages.append(stage)
        if on_stage is not None:
            on_stage(stage)
        if not stage.held:
            break
        rate += search.step
    return SearchResult(search, stages)
