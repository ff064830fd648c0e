"""Redis: the task status cache and agent heartbeats. Never the source of truth.

Every call degrades instead of failing: when Redis errors, the cache answers "miss", writes are
dropped, and Redis is left alone for ``backoff_s`` so a dead Redis costs no latency per request.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from loguru import logger
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from catalog import metrics
from catalog.names import RedisKeys
from service.domain import Task
from service.settings import RedisSettings

T = TypeVar("T")

_SET_IF_NEWER = """
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'doc', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

_encode = msgspec.json.Encoder().encode
_decode_task = msgspec.json.Decoder(Task).decode


POOL_WAIT_S = 5.0
"""How long a call waits for one of the pool's connections when all are in use (a flood):
back-pressure, not an outage; Redis that does not answer is the 0.5 s socket timeout."""


STALE_CONNECTION_RETRY = Retry(NoBackoff(), 1, supported_errors=(redis_errors.ConnectionError,))
"""A command whose connection turns out closed (Redis restarted since it was opened) runs once
more on a new one. Without it every idle connection of the pool failed once after a restart,
each failure leaving Redis alone for ``backoff_s``: the cache and the rate limits stayed off
for minutes after Redis was back. Timeouts are not retried (Redis is slow or gone)."""


def is_pool_wait(exc: BaseException) -> bool:
    """The call found every connection of the pool in use for ``POOL_WAIT_S``."""
    return isinstance(exc, redis_errors.ConnectionError) and "No connection available" in str(exc)


class Cache:
    """Status cache (read-through, version-guarded writes) and heartbeat keys."""

    def __init__(self, redis: RedisSettings, backoff_s: float = 1.0) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            redis.url, max_connections=redis.max_connections, timeout=POOL_WAIT_S,
            retry=STALE_CONNECTION_RETRY, socket_timeout=0.5,
            socket_connect_timeout=0.5, health_check_interval=10)
        self.client: aioredis.Redis = aioredis.Redis.from_pool(pool)  # owns it: closes it
        self.keys = RedisKeys(redis.prefix)
        self.final_ttl_s = redis.status_ttl_s
        self.active_ttl_s = redis.active_status_ttl_s
        self.backoff_s = backoff_s
        self._down_until = 0.0
        self.last_error: str | None = None
        self._set_if_newer = self.client.register_script(_SET_IF_NEWER)
        self._pending: dict[str, Task] = {}
        self._lookups = {o: metrics.CACHE_REQUESTS.labels(o) for o in ("hit", "miss", "error")}
        self._flusher: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """False while Redis is being left alone after an error."""
        return time.monotonic() >= self._down_until

    async def ping(self) -> bool:
        """Probe Redis now (used by readiness), resetting the back-off when it answers."""
        try:
            await self.client.ping()
        except Exception as exc:
            self.mark_down(exc)
            return False
        self._down_until, self.last_error = 0.0, None
        return True

    async def get_task(self, task_id: str) -> Task | None:
        """The cached task; ``None`` on a miss or when Redis is unavailable (counted apart)."""
        failed = object()
        raw = await self.guarded(lambda: self.client.hget(self.keys.task(task_id), "doc"), failed)
        outcome = "error" if raw is failed else "hit" if raw else "miss"
        self._lookups[outcome].inc()
        return _decode_task(raw) if isinstance(raw, bytes) and raw else None

    def put_task(self, task: Task) -> None:
        """Queue the task for the cache; written unless a newer version is already there.

        Writes are batched: every write queued during one event-loop pass goes out in one
        pipeline, so a transition costs no Redis round trip of its own. Unfinished tasks expire
        quickly: a transition made while Redis was unreachable leaves a stale entry for at most
        ``active_ttl_s``.
        """
        queued = self._pending.get(task.id)
        if queued is None or queued.version < task.version:
            self._pending[task.id] = task
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def put_task_now(self, *tasks: Task) -> None:
        """Write the tasks before returning: for a transition of a task that may already be
        cached (cancel, requeue), so the caller's next read cannot see the older state."""
        if tasks:
            await self.guarded(functools.partial(self._write, list(tasks)), None)

    async def flush(self) -> None:
        """Write every queued task now (tests and shutdown)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush()

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the current pass queue more writes
        while self._pending:  # writes queued while a pipeline was in flight go in the next one
            tasks = list(self._pending.values())
            self._pending = {}
            await self.guarded(functools.partial(self._write, tasks), None)

    async def _write(self, tasks: list[Task]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for task in tasks:
                ttl = self.final_ttl_s if task.status.is_final else self.active_ttl_s
                await self._set_if_newer(keys=[self.keys.task(task.id)],
                                         args=[task.version, _encode(task), ttl], client=pipe)
            await pipe.execute()

    async def put_heartbeat(self, worker_id: str, beat: dict[str, Any], ttl_s: float) -> None:
        await self.guarded(lambda: self.client.set(
            self.keys.heartbeat(worker_id), _encode(beat), px=int(ttl_s * 1000)), None)

    async def delete_heartbeat(self, worker_id: str) -> None:
        await self.guarded(lambda: self.client.delete(self.keys.heartbeat(worker_id)), 0)

    async def heartbeats(self) -> list[dict[str, Any]] | None:
        """Every live heartbeat, or ``None`` when Redis cannot say."""
        async def read() -> list[dict[str, Any]]:
            keys = [k async for k in self.client.scan_iter(self.keys.heartbeat_pattern(),
                                                          count=500)]
            values = await self.client.mget(keys) if keys else []
            return [msgspec.json.decode(v) for v in values if v]
        return await self.guarded(read, None)

    async def close(self) -> None:
        await self.flush()
        await self.client.aclose()

    async def guarded(self, op: Callable[[], Awaitable[T]], fallback: T) -> T:
        """Run ``op`` on Redis; ``fallback`` when Redis is being left alone or it fails."""
        if not self.available:
            return fallback
        try:
            return await op()
        except Exception as exc:
            self.mark_down(exc)
            return fallback

    def mark_down(self, exc: BaseException) -> None:
        if is_pool_wait(exc):  # this process is busy, Redis is not down: leave it in use
            return
        if self.last_error is None:
            logger.warning("Redis unavailable, continuing without cache: {}", exc)
        self.last_error = str(exc) or type(exc).__name__
        self._down_until = time.monotonic() + self.backoff_s
