"""Per-process health gauges, refreshed every ``interval_s``: database, pool, broker, Redis,
event-loop lag and free disk space. One loop per process (API worker or agent)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aio_pika.abc import AbstractRobustConnection
from loguru import logger

from catalog import metrics
from service.cache import Cache
from service.db.pool import Pool
from service.dependencies import check_rabbitmq, check_redis, is_up, postgres_answers
from service.gauges.disk import DiskGauges


class Probe:
    def __init__(self, pool: Pool, amqp: AbstractRobustConnection, cache: Cache,
                 interval_s: float, slots: Callable[[], tuple[int, int]] | None = None,
                 extra: Callable[[], None] | None = None,
                 disks: DiskGauges | None = None) -> None:
        self.pool, self.amqp, self.cache = pool, amqp, cache
        self.disks = disks
        self.interval_s = interval_s
        self.slots = slots
        self.extra = extra
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="telemetry-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            due = time.perf_counter() + self.interval_s
            await asyncio.sleep(self.interval_s)
            metrics.EVENT_LOOP_LAG.set(max(0.0, time.perf_counter() - due))
            try:
                await self.sample()
            except Exception as exc:
                logger.warning("telemetry probe failed: {}", exc)

    async def sample(self) -> None:
        stats = self.pool.get_stats()
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        metrics.DB_POOL_SIZE.set(size)
        metrics.DB_POOL_MIN.set(stats.get("pool_min", 0))
        metrics.DB_POOL_MAX.set(stats.get("pool_max", 0))
        metrics.DB_POOL_AVAILABLE.set(available)
        metrics.DB_POOL_WAITING.set(stats.get("requests_waiting", 0))
        metrics.DB_POOL_USAGE.set((size - available) / max(1, stats.get("pool_max", 1)))
        errors = self.pool.pop_stats().get("connections_errors", 0)
        if errors:
            metrics.DB_CONNECTION_ERRORS.inc(errors)
        metrics.BROKER_UP.set(await is_up(check_rabbitmq(self.amqp, open_channel=False)))
        metrics.REDIS_UP.set(await is_up(check_redis(self.cache)))
        metrics.DB_UP.set(await is_up(postgres_answers(self.pool, self.interval_s)))
        if self.extra is not None:
            self.extra()
        if self.disks is not None:
            self.disks.sample()
        if self.slots is not None:
            used, available_slots = self.slots()
            metrics.AGENT_SLOTS_USED.set(used)
            metrics.AGENT_SLOTS_AVAILABLE.set(available_slots)
