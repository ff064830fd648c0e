"""Start-up checks: each dependency that cannot be used becomes one clear line, not a traceback
(the checks are ``service.dependencies``)."""

from __future__ import annotations

import asyncio

from service.dependencies import reach_postgres, reach_rabbitmq, reach_redis
from service.errors import DependencyUnavailable
from service.settings import Settings


async def check_dependencies(settings: Settings, *, redis_required: bool = False) -> list[str]:
    """Problems found, one line each (empty when all answer). Creates the database if missing."""
    problems: list[str] = []

    checks = [reach_postgres(settings.database), reach_rabbitmq(settings.broker),
              reach_redis(settings.redis)]
    for outcome in await asyncio.gather(*checks, return_exceptions=True):
        if isinstance(outcome, DependencyUnavailable):
            if outcome.name == "Redis" and not redis_required:
                problems.append(f"warning: {outcome} (continuing: Redis is optional)")
            else:
                problems.append(f"error: {outcome}")
        elif isinstance(outcome, BaseException):
            problems.append(f"error: {type(outcome).__name__}: {outcome}")
    return problems
