"""``/v1/admin/queue-stats``: each agent type's backlog, for autoscalers (KEDA's
``metrics-api`` trigger reads ``agents.<agent>.queued`` or ``.oldest_queued_age_s``).

Every known agent type is in the answer, with zeros when it has nothing to do, so a trigger's
value path always resolves. Cheap whatever the size of the tables: the running counts are the
maintained task counts, the due backlog comes from the index of live tasks. A key needs the
``queues:read`` scope (or ``admin``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, Request, get

from service.api.openapi import problems
from service.api.state import Services
from service.db.task_stats import TaskStats


class AgentBacklog(msgspec.Struct):
    queued: int
    """Tasks due to start (queued or retrying, their time come): the work waiting for a slot."""
    running: int
    oldest_queued_age_s: float
    """How long the oldest of them has waited (0 when none waits)."""


class QueueStatsOut(msgspec.Struct):
    at: str
    agents: dict[str, AgentBacklog]


async def backlog(services: Services) -> QueueStatsOut:
    stats = TaskStats(services.pool)
    by_status, due = await asyncio.gather(stats.by_status(), stats.due())
    agents = sorted({*services.agents, *due, *(agent for agent, _ in by_status)})
    return QueueStatsOut(datetime.now(UTC).isoformat(), {
        agent: AgentBacklog(due.get(agent, (0, 0.0))[0], by_status.get((agent, "running"), 0),
                            round(due.get(agent, (0, 0.0))[1], 3))
        for agent in agents})


class QueueStatsController(Controller):
    path = "/v1/admin/queue-stats"
    tags = ["admin"]
    opt = {"scope": "queues:read"}

    @get("/", summary="Each agent type's due backlog, running tasks and oldest wait (for"
                      " autoscalers)", responses=problems())
    async def queue_stats(self, request: Request[Any, Any, Any]) -> QueueStatsOut:
        return await backlog(request.app.state.services)
