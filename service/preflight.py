"""Start-up checks: each unreachable dependency becomes one clear line, not a traceback."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from service.broker.connection import connect
from service.db.pool import ensure_database, redact
from service.errors import DependencyUnavailable
from service.settings import Settings

REDIS_HINT = ("Start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379"
              " --save '' --appendonly no")


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
            raise DependencyUnavailable("Redis", redact(settings.redis_url), REDIS_HINT,
                                        exc) from exc
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
