"""Heartbeats: a Redis key with a TTL per worker, mirrored to PostgreSQL for when Redis is down."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from service.cache import Cache
from service.db.workers import WorkerRegistry


class Heartbeat:
    """Beats every ``interval_s`` until stopped; the key expires ``ttl_s`` after the last beat."""

    def __init__(self, worker_id: str, agents: list[str], concurrency: int, cache: Cache,
                 registry: WorkerRegistry, unacked: Callable[[], dict[str, int]], *,
                 interval_s: float, ttl_s: float) -> None:
        self.worker_id = worker_id
        self.cache = cache
        self.registry = registry
        self.unacked = unacked
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.started_at = datetime.now(UTC).isoformat()
        self._static = {"worker_id": worker_id, "agents": agents, "concurrency": concurrency,
                        "hostname": socket.gethostname(), "pid": os.getpid()}
        self._task: asyncio.Task[None] | None = None

    def beat_payload(self) -> dict[str, Any]:
        unacked = {queue: n for queue, n in self.unacked().items() if n}
        return {**self._static, "in_flight": sum(unacked.values()), "unacked": unacked,
                "started_at": self.started_at,
                "beat_at": datetime.now(UTC).isoformat()}

    async def beat(self) -> None:
        payload = self.beat_payload()
        await self.cache.put_heartbeat(self.worker_id, payload, self.ttl_s)
        try:
            await self.registry.beat(payload)
        except Exception as exc:
            logger.warning("heartbeat not written to PostgreSQL: {}", exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.cache.delete_heartbeat(self.worker_id)
        try:
            await self.registry.remove(self.worker_id)
        except Exception as exc:
            logger.warning("worker not removed from the registry: {}", exc)

    async def _loop(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval_s)
