"""Is each dependency usable? One module for every check, each raising with the reason:

- before a process holds any resource (``reach_*``, from settings; ``service.preflight``
  prints their errors): can a connection be opened, and if not, why (not answering, a
  refused login, a missing database or vhost)?
- through the resources a process holds (``check_*``, its pool, AMQP connection and cache):
  the readiness endpoint reports them with their latency, the probe as ``*_up`` gauges.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions
from aio_pika.abc import AbstractRobustConnection
from psycopg_pool import PoolTimeout

from service.broker.connection import connect
from service.db.pool import Pool, ensure_database
from service.errors import DependencyLoginRefused, DependencyResourceMissing, DependencyUnavailable
from service.reachability import not_answering, redact, unreachable_reason
from service.settings import BrokerSettings, DatabaseSettings, RedisSettings

if TYPE_CHECKING:  # the cache imports the metric catalog, which the command line must not load
    from service.cache import Cache

REDIS_HINT = ("Start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379"
              " --save '' --appendonly no")
REDIS_VARIABLE = "ORCH_REDIS_URL"
REDIS_PORT = 6379


async def redis_error(url: str, exc: BaseException) -> DependencyUnavailable:
    """The one error to raise for ``exc``, a failed PING to the Redis ``url`` names.

    A password sent to a server without one is a login problem too ("AUTH <password> called
    without any password configured"): redis-py raises ``AuthenticationError`` for it."""
    shown, text = redact(url), str(exc)
    if (isinstance(exc, redis.exceptions.AuthenticationError)
            or text.startswith(("NOAUTH", "WRONGPASS"))):
        return DependencyLoginRefused("Redis", shown, text, REDIS_VARIABLE, exc)
    if isinstance(exc, redis.exceptions.ResponseError) and "DB index is out of range" in text:
        db = urlsplit(url).path.strip("/") or "0"
        return DependencyResourceMissing(
            "Redis", shown, "database", db,
            f"use a number below the server's CONFIG GET databases, or fix {REDIS_VARIABLE}",
            note=f" ({text})", cause=exc)
    reason = ("timed out" if isinstance(exc, redis.exceptions.TimeoutError)
              else unreachable_reason(exc))
    if reason is not None:
        parts = urlsplit(url)
        try:
            port = parts.port or REDIS_PORT
        except ValueError:
            port = REDIS_PORT
        host = parts.hostname if parts.scheme in ("redis", "rediss") else None
        return await not_answering("Redis", url, reason, host=host, port=port,
                                   default_port=REDIS_PORT, variable=REDIS_VARIABLE,
                                   start_hint=REDIS_HINT, cause=exc)
    return DependencyUnavailable("Redis", shown, f"check {REDIS_VARIABLE} and the server's log",
                                 exc)


async def reach_postgres(database: DatabaseSettings) -> None:
    """Connect (and create the configured database when the server runs without it)."""
    await ensure_database(database)


async def reach_rabbitmq(broker: BrokerSettings) -> None:
    connection = await connect(broker, "preflight")
    await connection.close()


async def reach_redis(redis: RedisSettings) -> None:
    client = aioredis.Redis.from_url(redis.url, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        raise await redis_error(redis.url, exc) from exc
    finally:
        await client.aclose()


class PoolExhausted(ConnectionError):
    """PostgreSQL may answer, but every connection of this process's pool is in use."""


async def check_postgres(pool: Pool, timeout_s: float) -> None:
    """``SELECT 1`` through the pool; ``PoolExhausted`` when no connection came free in time
    while the pool was at its maximum (the server is not the problem)."""
    try:
        async with pool.connection(timeout=timeout_s) as conn:
            await conn.execute("SELECT 1")
    except PoolTimeout as exc:
        stats = pool.get_stats()
        if stats.get("pool_available", 0) == 0 and stats.get("pool_size", 0) >= pool.max_size:
            raise PoolExhausted(
                f"every one of the pool's {pool.max_size} connections is in use"
                f" ({stats.get('requests_waiting', 0)} requests waiting)") from exc
        raise


async def postgres_answers(pool: Pool, timeout_s: float) -> None:
    """Reachability, not capacity: an exhausted pool still counts as PostgreSQL up (its own
    alert, DbPoolExhausted, names that)."""
    try:
        await check_postgres(pool, timeout_s)
    except PoolExhausted:
        return


async def check_rabbitmq(amqp: AbstractRobustConnection, *, open_channel: bool = True) -> None:
    """The connection is open (and, with ``open_channel``, a channel opens on it)."""
    if amqp.is_closed:
        raise ConnectionError("connection to RabbitMQ is closed")
    if not amqp.connected.is_set():  # a robust connection stays open while it reconnects
        raise ConnectionError("connection to RabbitMQ lost (reconnecting)")
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
