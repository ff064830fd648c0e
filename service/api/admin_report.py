"""``/v1/admin/report``: what PostgreSQL says about a past window, for admin keys (the data
half of ``orchestrator report``; the CLI adds the pages and SLOs from the monitoring stack).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter

from service.api.openapi import problems
from service.api.state import Services
from service.db.shift_report import ShiftReportStore

MAX_WINDOW_S = 90 * 86400.0


class AgentReport(msgspec.Struct):
    agent: str
    submitted: int
    succeeded: int
    dead: int
    cancelled: int
    finished_per_s: float
    failure_ratio: float | None
    """dead / (succeeded + dead); ``null`` when none finished."""
    run_p50_s: float | None
    run_p95_s: float | None
    """Of the tasks that succeeded: from the start of their last attempt to its end."""
    end_to_end_p95_s: float | None
    """Of the tasks that succeeded: from submission to the end."""


class DeadLetterCount(msgspec.Struct):
    agent: str
    reason: str
    count: int
    replayed: int


class ReportOut(msgspec.Struct):
    window_s: float
    start: datetime
    end: datetime
    agents: list[AgentReport]
    peak_submitted_per_s: float
    """The busiest minute's submissions per second."""
    peak_finished_per_s: float
    dead_letters: list[DeadLetterCount]


def _agent(agent: str, row: dict[str, Any], window_s: float) -> AgentReport:
    ok, dead, cancelled = (int(row.get(k) or 0) for k in ("succeeded", "dead", "cancelled"))

    def seconds(key: str) -> float | None:
        value = row.get(key)
        return None if value is None else round(float(value), 4)

    return AgentReport(agent, int(row.get("submitted") or 0), ok, dead, cancelled,
                       round((ok + dead + cancelled) / window_s, 4),
                       round(dead / (ok + dead), 4) if ok + dead else None,
                       seconds("run_p50_s"), seconds("run_p95_s"), seconds("end_to_end_p95_s"))


async def gather_report(services: Services, window_s: float) -> ReportOut:
    store = ShiftReportStore(services.pool)
    end = datetime.now(UTC)
    agents, submitted, finished, dead = await asyncio.gather(
        store.agents(window_s), store.peak_per_s(window_s, "created_at"),
        store.peak_per_s(window_s, "finished_at"), store.dead_letters(window_s))
    rows = [_agent(name, agents.get(name, {}), window_s)
            for name in sorted({*services.agents, *agents})]
    return ReportOut(window_s, end - timedelta(seconds=window_s), end, rows,
                     round(submitted, 3), round(finished, 3),
                     [DeadLetterCount(r["agent"], r["reason"], int(r["n"]), int(r["replayed"]))
                      for r in dead])


class ReportController(Controller):
    path = "/v1/admin/report"
    tags = ["admin"]
    opt = {"scope": "admin"}

    @get("/", summary="Throughput, failures, slowest agents, peak rates and dead letters over"
                      " the last since_s seconds", responses=problems(422))
    async def report(self, request: Request[Any, Any, Any],
                     since_s: Annotated[float, Parameter(gt=0, le=MAX_WINDOW_S)] = 43200.0,
                     ) -> ReportOut:
        return await gather_report(request.app.state.services, since_s)
