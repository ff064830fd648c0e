"""Scrape-time metrics of global state: tasks by status, backlogs, queue depths, live agents,
open dead letters, the newest verified backup, schedules that are late.

Computed from PostgreSQL and RabbitMQ when ``/metrics`` is scraped, at most once per
``max_age_s`` (scrapes stay cheap however many there are).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from aio_pika.abc import AbstractRobustConnection
from loguru import logger
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from catalog import metrics, names
from catalog.metrics import Sampled
from service.broker.queues import queue_depths
from service.cache import Cache
from service.db.backup import BackupLedger
from service.db.dead_letters import ORPHAN_AGENT, DeadLetterStore
from service.db.outbox import OutboxStore
from service.db.schedules import ScheduleStore
from service.db.task_stats import TaskStats
from service.db.workers import WorkerRegistry


class StateSampler(Collector):
    """A prometheus collector whose values are refreshed by ``await refresh()``."""

    def __init__(self, stats: TaskStats, outbox: OutboxStore, workers: WorkerRegistry,
                 amqp: AbstractRobustConnection, agents: list[str], heartbeat_ttl_s: float,
                 max_age_s: float, deployed_agents: tuple[str, ...] = (),
                 cache: Cache | None = None) -> None:
        self.stats, self.outbox, self.workers, self.amqp = stats, outbox, workers, amqp
        self.backups = BackupLedger(stats.pool)
        self.dead_letters = DeadLetterStore(stats.pool)
        self.schedules = ScheduleStore(stats.pool)
        self.agents = agents
        self.deployed_agents = deployed_agents
        self.cache = cache
        self.heartbeat_ttl_s = heartbeat_ttl_s
        self.max_age_s = max_age_s
        self._values: dict[Sampled, dict[tuple[str, ...], float]] = {}
        self._at = 0.0
        self._lock = asyncio.Lock()
        self._running: asyncio.Task[None] | None = None

    async def refresh(self, timeout_s: float = 2.0, wait_s: float = 0.5) -> None:
        """Re-read the state unless it is fresh, waiting at most ``wait_s`` for it: a slow or
        absent dependency keeps the previous values rather than stalling the scrape past its
        timeout (its own ``*_up`` gauge shows the trouble). One re-read at a time, each bounded
        by ``timeout_s``."""
        if time.monotonic() - self._at < self.max_age_s:
            return
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._refresh(timeout_s), name="state-sampler")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._running), wait_s)

    async def _refresh(self, timeout_s: float) -> None:
        async with self._lock:
            values: dict[Sampled, dict[tuple[str, ...], float]] = {m: {} for m in metrics.SAMPLED}
            try:
                results = await asyncio.wait_for(asyncio.gather(
                    self._tasks(values), self._queues(values), self._backups(values),
                    self._dead_letters(values), self._schedules(values),
                    return_exceptions=True),
                    timeout_s)
            except TimeoutError:
                logger.warning("metrics sampling took over {}s; serving the last values",
                               timeout_s)
                return
            for error in results:
                if isinstance(error, Exception):
                    logger.warning("metrics sampling incomplete: {}", error)
            self._values, self._at = values, time.monotonic()

    async def _tasks(self, out: dict[Sampled, dict[tuple[str, ...], float]]) -> None:
        for (agent, status), count in (await self.stats.by_status()).items():
            out[metrics.TASKS_BY_STATUS][(agent, status)] = count
        for agent in self.agents:  # a known agent with nothing waiting reads 0, not "absent"
            out[metrics.OLDEST_QUEUED_AGE][(agent,)] = 0.0
            out[metrics.RUNNING_PAST_TIMEOUT][(agent,)] = 0.0
        for agent, count in (await self.stats.running_past_timeout()).items():
            out[metrics.RUNNING_PAST_TIMEOUT][(agent,)] = count
        # live workers read 0 only for the types that must have one (a type no deployment
        # runs is absent, so it pages nobody)
        for agent in {*self.deployed_agents, *await self.workers.deployed_types()}:
            out[metrics.AGENTS_LIVE][(agent,)] = 0.0
        for agent, age_s in (await self.stats.oldest_due_age()).items():
            out[metrics.OLDEST_QUEUED_AGE][(agent,)] = age_s
        unpublished, oldest = await self.outbox.backlog()
        out[metrics.OUTBOX_UNPUBLISHED][()] = unpublished
        out[metrics.OUTBOX_OLDEST_AGE][()] = oldest
        await self.workers.prune()
        for row in await self.workers.by_agent(self.heartbeat_ttl_s):
            out[metrics.AGENTS_LIVE][(row["agent"],)] = row["live"]
            out[metrics.HEARTBEAT_AGE][(row["agent"],)] = float(row["oldest_beat_s"])
        beats = await self.cache.heartbeats() if self.cache is not None else None
        if beats is not None:  # Redis says who is live (its keys expire); PostgreSQL only
            live = out[metrics.AGENTS_LIVE]  # mirrors it, late after its own outage
            for labels in live:
                live[labels] = 0.0
            for beat in beats:
                for name in beat.get("agents", []):
                    live[(name,)] = live.get((name,), 0.0) + 1

    async def _dead_letters(self, out: dict[Sampled, dict[tuple[str, ...], float]]) -> None:
        open_letters = out[metrics.DEAD_LETTERS_OPEN]
        for agent in (*self.agents, ORPHAN_AGENT):  # at 0 from the start: growth is a delta
            open_letters[(agent,)] = 0.0
        for agent, count in (await self.dead_letters.open_by_agent()).items():
            open_letters[(agent,)] = float(count)

    async def _schedules(self, out: dict[Sampled, dict[tuple[str, ...], float]]) -> None:
        active, overdue_s = await self.schedules.overdue()
        out[metrics.SCHEDULES_ACTIVE][()] = active
        out[metrics.SCHEDULE_OVERDUE][()] = overdue_s

    async def _backups(self, out: dict[Sampled, dict[tuple[str, ...], float]]) -> None:
        verified_at, age_s = await self.backups.last_verified()
        out[metrics.BACKUP_LAST_VERIFIED][()] = verified_at
        out[metrics.BACKUP_VERIFIED_AGE][()] = age_s

    async def _queues(self, out: dict[Sampled, dict[tuple[str, ...], float]]) -> None:
        queues = [*(q for agent in self.agents for q in names.agent_queues(agent)),
                  names.DEAD_LETTER_QUEUE]
        for queue_name, depth in (await queue_depths(self.amqp, queues)).items():
            out[metrics.QUEUE_MESSAGES][(queue_name,)] = depth.ready
            out[metrics.QUEUE_CONSUMERS][(queue_name,)] = depth.consumers

    def collect(self) -> Iterable[Metric]:
        for metric in metrics.SAMPLED:
            family = GaugeMetricFamily(metric.full_name, metric.documentation,
                                       labels=list(metric.labelnames))
            for labels, value in self._values.get(metric, {}).items():
                family.add_metric(list(labels), value)
            yield family
