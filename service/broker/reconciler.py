"""The reconciler: PostgreSQL is the record, so where the broker lost a task's message, repair.

In every process that opens the shared resources (one pass at a time across all of them, under
an advisory lock): per agent type, the tasks that wait to start (published, ``queued`` or a due
``retrying``) are compared with the messages that can hold them: those ready in the agent queue
plus those the live workers hold (their reported in-flight deliveries, an upper bound). When
fewer messages than tasks remain in two passes in a row, the shortfall of tasks that have
waited over ``after_s`` is handed back to the outbox and published again
(``orchestrator_reconciled_tasks_total{action="republished"}``).

Messages the broker dead-lettered on its own are the dead-letter consumer's (``dead_letters``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from aio_pika.abc import AbstractRobustConnection
from loguru import logger

from agents.registry import known_agents
from catalog import metrics, names
from service.broker.queues import queue_depths
from service.db.recovery import RecoveryStore
from service.db.workers import WorkerRegistry

REPUBLISHED = "republished"
DEAD_LETTERED = "dead_lettered"
"""The two actions counted: by this pass, and by the dead-letter consumer."""


class Reconciler:
    def __init__(self, recovery: RecoveryStore, workers: WorkerRegistry,
                 amqp: AbstractRobustConnection, *, heartbeat_ttl_s: float, interval_s: float,
                 after_s: float, on_republished: Callable[[], None]) -> None:
        self.recovery, self.workers, self.amqp = recovery, workers, amqp
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.interval_s = interval_s
        self.after_s = after_s
        self.on_republished = on_republished
        self._short: dict[str, int] = {}
        """The shortfall per agent seen by the previous pass."""
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for agent in known_agents():  # at 0 from the start, so the first repair is an increase
            for action in (REPUBLISHED, DEAD_LETTERED):
                metrics.RECONCILED.labels(agent, action)
        self._tasks.append(asyncio.create_task(self._loop(), name="reconciler"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("reconciler pass skipped: {}", exc)

    async def reconcile_once(self) -> dict[str, int]:
        """One pass; returns how many tasks of each agent type were handed back to the outbox
        (empty when another process holds the pass)."""
        async with self.recovery.exclusive() as conn:
            if conn is None:
                return {}
            before = await self.recovery.pass_start(conn)
            agents = list(await self.recovery.waiting_by_agent(conn, before))
            held = await self._held_by_workers()
            ready = await self._ready_messages(agents)
            # counted again after the broker was read: a task claimed meanwhile is not counted
            waiting = await self.recovery.waiting_by_agent(conn, before)
            republished: dict[str, int] = {}
            short_now: dict[str, int] = {}
            for agent, count in waiting.items():
                short = count - ready.get(agent, 0) - held.get(agent, 0)
                if short <= 0:
                    continue
                short_now[agent] = short
                confirmed = min(short, self._short.get(agent, 0))
                if confirmed <= 0:
                    continue
                ids = await self.recovery.stale(conn, agent, self.after_s, confirmed)
                done = await self.recovery.republish(conn, ids, "message_lost")
                if done:
                    republished[agent] = len(done)
            self._short = short_now
        for agent, count in republished.items():
            metrics.RECONCILED.labels(agent, REPUBLISHED).inc(count)
            logger.bind(agent=agent).warning(
                "{} queued {} tasks had no message left in the broker; published them again",
                count, agent)
        if republished:
            self.on_republished()
        return republished

    async def _held_by_workers(self) -> dict[str, int]:
        held: dict[str, int] = {}
        for worker in await self.workers.live(self.heartbeat_ttl_s):
            for agent in worker["agents"]:
                held[agent] = held.get(agent, 0) + int(worker["in_flight"])
        return held

    async def _ready_messages(self, agents: list[str]) -> dict[str, int]:
        """Messages ready in the agents' queues (a queue not declared holds none)."""
        queues = [queue for agent in agents for queue in names.agent_queues(agent)]
        ready = dict.fromkeys(agents, 0)
        for queue, depth in (await queue_depths(self.amqp, queues)).items():
            ready[names.agent_of_queue(queue)] += depth.ready
        return ready
