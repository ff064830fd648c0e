"""``/health/live`` and ``/health/ready``: each dependency's status and latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, get

from service.api.schemas import DependencyHealth, Readiness
from service.api.state import Services
from service.dependencies import check_postgres, check_rabbitmq, check_redis

_PROBE_TIMEOUT_S = 2.0


@get("/health/live", tags=["health"],
     summary="The process answers; ``instance`` names the server instance that answered")
async def live(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"status": "ok", "instance": request.app.state.instance}


@get("/health/ready", tags=["health"],
     summary="503 when PostgreSQL or RabbitMQ is unusable; Redis down is 'degraded' (200)")
async def ready(request: Request[Any, Any, Any]) -> Response[Readiness]:
    services: Services = request.app.state.services
    postgres, rabbitmq, redis = await asyncio.gather(
        _probe(lambda: check_postgres(services.pool, _PROBE_TIMEOUT_S)),
        _probe(lambda: check_rabbitmq(services.amqp)),
        _probe(lambda: check_redis(services.cache)),
    )
    deps = {"postgresql": postgres, "rabbitmq": rabbitmq, "redis": redis}
    instance = request.app.state.instance
    if postgres.status != "up" or rabbitmq.status != "up":
        return Response(Readiness("unavailable", deps, instance), status_code=503)
    return Response(Readiness("degraded" if redis.status != "up" else "ready", deps, instance),
                    status_code=200)


async def _probe(check: Callable[[], Awaitable[None]]) -> DependencyHealth:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), _PROBE_TIMEOUT_S)
    except Exception as exc:
        return DependencyHealth("down", None, str(exc) or type(exc).__name__)
    return DependencyHealth("up", round((time.perf_counter() - started) * 1000, 2))
