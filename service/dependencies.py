"""Is each dependency usable right now, through the resources a process holds (its pool, its
AMQP connection, its cache)? One check per dependency, raising with the reason; the readiness
endpoint reports them with their latency, the telemetry probe turns them into ``*_up`` gauges.
(Before a process holds any resource, ``service.preflight`` tells why one cannot be opened.)"""

from __future__ import annotations

from collections.abc import Awaitable

from aio_pika.abc import AbstractRobustConnection

from service.cache import Cache
from service.db.pool import Pool


async def check_postgres(pool: Pool, timeout_s: float) -> None:
    async with pool.connection(timeout=timeout_s) as conn:
        await conn.execute("SELECT 1")


async def check_rabbitmq(amqp: AbstractRobustConnection, *, open_channel: bool = True) -> None:
    """The connection is open (and, with ``open_channel``, a channel opens on it)."""
    if amqp.is_closed:
        raise ConnectionError("connection to RabbitMQ is closed (reconnecting)")
    if open_channel:
        channel = await amqp.channel(publisher_confirms=False)
        await channel.close()


async def check_redis(cache: Cache) -> None:
    if not await cache.ping():
        raise ConnectionError(cache.last_error or "no answer")


async def is_up(check: Awaitable[None]) -> bool:
    try:
        await check
    except Exception:
        return False
    return True
