"""``/v1/admin/stats``: the whole system at a glance, for admin keys (``orchestrator stats``).

Tasks by status per agent, each queue's ready / unacknowledged / consumers, the outbox backlog,
tasks past their timeout, open dead letters, and throughput and failure ratio over the last
5 and 60 minutes. Unacknowledged deliveries come from the workers' heartbeats (the broker does
not tell them over AMQP): ``null`` while Redis cannot say.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Controller, Request, get

from catalog import names
from service.api.openapi import problems
from service.api.state import Services
from service.broker.queues import queue_depths
from service.db.dead_letters import DeadLetterStore
from service.db.task_stats import TaskStats
from service.domain import TaskStatus

WINDOWS_MIN = (5, 60)


class Window(msgspec.Struct):
    minutes: int
    succeeded: int
    dead: int
    cancelled: int
    per_second: float
    """Tasks finished per second over the window."""
    failure_ratio: float | None
    """dead / (succeeded + dead); ``null`` when none finished."""

    @classmethod
    def of(cls, minutes: int, finished: dict[str, int]) -> Window:
        ok, dead = finished.get("succeeded", 0), finished.get("dead", 0)
        cancelled = finished.get("cancelled", 0)
        return cls(minutes, ok, dead, cancelled, round((ok + dead + cancelled) / (minutes * 60), 3),
                   round(dead / (ok + dead), 4) if ok + dead else None)


class AgentStats(msgspec.Struct):
    agent: str
    by_status: dict[str, int]
    running_past_timeout: int
    windows: list[Window]


class QueueStats(msgspec.Struct):
    queue: str
    ready: int
    unacked: int | None
    consumers: int


class StatsOut(msgspec.Struct):
    at: str
    agents: list[AgentStats]
    totals: list[Window]
    queues: list[QueueStats]
    outbox_unpublished: int
    outbox_oldest_s: float
    dead_letters_open: dict[str, int]
    """Dead letters recorded and not replayed, per agent (``orchestrator dlq list``)."""
    dead_letter_queue_ready: int | None
    """Messages waiting in the dead-letter queue to be recorded (normally 0: a backlog means
    no process consumes it); ``null`` when RabbitMQ cannot say."""
    broker_error: str | None = None


async def gather_stats(services: Services) -> StatsOut:
    stats = TaskStats(services.pool)
    by_status, past_timeout, outbox, beats, dead_open, *finished = await asyncio.gather(
        stats.by_status(), stats.running_past_timeout(), services.relay.store.backlog(),
        services.cache.heartbeats(), DeadLetterStore(services.pool).open_by_agent(),
        *(stats.finished(m * 60) for m in WINDOWS_MIN))
    agents = sorted({*services.agents, *(agent for agent, _ in by_status)})
    rows = [AgentStats(
        agent, {s.value: by_status.get((agent, s.value), 0) for s in TaskStatus},
        past_timeout.get(agent, 0),
        [Window.of(m, done.get(agent, {})) for m, done in zip(WINDOWS_MIN, finished,
                                                                strict=True)])
        for agent in agents]
    totals = [Window.of(m, _summed(done)) for m, done in zip(WINDOWS_MIN, finished, strict=True)]
    queues, dead, error = await _queues(services, agents, beats)
    unpublished, oldest = outbox
    return StatsOut(datetime.now(UTC).isoformat(), rows, totals, queues, unpublished,
                    round(oldest, 3), dead_open, dead, error)


def _summed(by_agent: dict[str, dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in by_agent.values():
        for status, n in counts.items():
            out[status] = out.get(status, 0) + n
    return out


async def _queues(services: Services, agents: list[str], beats: list[dict[str, Any]] | None,
                  ) -> tuple[list[QueueStats], int | None, str | None]:
    unacked: dict[str, int] | None = None
    if beats is not None:
        unacked = {}
        for beat in beats:
            for queue, n in (beat.get("unacked") or {}).items():
                unacked[queue] = unacked.get(queue, 0) + int(n)
    wanted = [queue for agent in agents for queue in names.agent_queues(agent)]
    try:
        depths = await asyncio.wait_for(
            queue_depths(services.amqp, [*wanted, names.DEAD_LETTER_QUEUE]), 5)
    except Exception as exc:
        return [], None, f"RabbitMQ cannot say: {type(exc).__name__}"
    queues = [QueueStats(queue, depth.ready,
                         None if unacked is None else unacked.get(queue, 0), depth.consumers)
              for queue, depth in depths.items() if queue in wanted]
    dead = depths.get(names.DEAD_LETTER_QUEUE)
    return queues, dead.ready if dead else 0, None


class StatsController(Controller):
    path = "/v1/admin/stats"
    tags = ["admin"]
    opt = {"scope": "admin"}

    @get("/", summary="The system at a glance: tasks, queues, outbox, throughput",
         responses=problems())
    async def stats(self, request: Request[Any, Any, Any]) -> StatsOut:
        return await gather_stats(request.app.state.services)
