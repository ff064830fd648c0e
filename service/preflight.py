"""Start-up checks: each unreachable dependency becomes one clear line, not a traceback."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions

from service.broker.connection import connect
from service.db.pool import ensure_database
from service.errors import DependencyLoginRefused, DependencyResourceMissing, DependencyUnavailable
from service.reachability import not_answering, redact, unreachable_reason
from service.settings import Settings

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


async def check_dependencies(settings: Settings, *, redis_required: bool = False) -> list[str]:
    """Problems found, one line each (empty when all answer). Creates the database if missing."""
    problems: list[str] = []

    async def postgres() -> None:
        await ensure_database(settings)

    async def rabbitmq() -> None:
        connection = await connect(settings, "preflight")
        await connection.close()

    async def redis() -> None:
        client = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
        try:
            await client.ping()
        except Exception as exc:
            raise await redis_error(settings.redis_url, exc) from exc
        finally:
            await client.aclose()

    checks = [postgres(), rabbitmq(), redis()]
    for outcome in await asyncio.gather(*checks, return_exceptions=True):
        if isinstance(outcome, DependencyUnavailable):
            if outcome.name == "Redis" and not redis_required:
                problems.append(f"warning: {outcome} (continuing: Redis is optional)")
            else:
                problems.append(f"error: {outcome}")
        elif isinstance(outcome, BaseException):
            problems.append(f"error: {type(outcome).__name__}: {outcome}")
    return problems
