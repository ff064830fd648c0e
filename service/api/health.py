"""``/health/live`` and ``/health/ready``: each dependency's status and latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec

from service.api.auth import bearer_key
from service.api.schemas import DependencyHealth, Readiness
from service.api.state import Services
from service.dependencies import check_postgres, check_rabbitmq, check_redis

_PROBE_TIMEOUT_S = 2.0
_PROBE_SHARED_S = 1.0


@get("/health/live", tags=["health"],
     summary="The process answers; ``instance`` names the server instance that answered")
async def live(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"status": "ok", "instance": request.app.state.instance}


@get("/health/ready", tags=["health"],
     summary="503 when PostgreSQL or RabbitMQ is unusable; Redis down is 'degraded' (200)",
     responses={503: ResponseSpec(Readiness, generate_examples=False,
                                  description="PostgreSQL or RabbitMQ is unusable")},
     description="Each dependency's status and latency, and whether the rate limits are"
                 " enforced, are shown to admin keys only; the probe is shared for 1 s.")
async def ready(request: Request[Any, Any, Any]) -> Response[Readiness]:
    services: Services = request.app.state.services
    deps = await _dependencies(request.app.state, services)
    instance = request.app.state.instance
    if deps["postgresql"].status != "up" or deps["rabbitmq"].status != "up":
        status, code = "unavailable", 503
    else:
        status, code = ("degraded" if deps["redis"].status != "up" else "ready"), 200
    if not await _is_admin(request, services):
        return Response(Readiness(status, instance), status_code=code)
    limits = "enforced" if services.limits.failing_open_since is None else "failing open"
    return Response(Readiness(status, instance, deps, limits), status_code=code)


async def _dependencies(state: Any, services: Services) -> dict[str, DependencyHealth]:
    """One probe of every dependency per ``_PROBE_SHARED_S``, shared by the requests then."""
    cached = getattr(state, "readiness_probe", None)
    if cached is None or time.monotonic() - cached[0] >= _PROBE_SHARED_S:
        cached = (time.monotonic(), asyncio.ensure_future(asyncio.gather(
            _probe(lambda: check_postgres(services.pool, _PROBE_TIMEOUT_S)),
            _probe(lambda: check_rabbitmq(services.amqp)),
            _probe(lambda: check_redis(services.cache)))))
        state.readiness_probe = cached
    postgres, rabbitmq, redis = await asyncio.shield(cached[1])
    return {"postgresql": postgres, "rabbitmq": rabbitmq, "redis": redis}


async def _is_admin(request: Request[Any, Any, Any], services: Services) -> bool:
    key = bearer_key(request.headers.get("authorization"))
    found = await services.keys.lookup(key) if key else None
    return found is not None and found.is_admin


async def _probe(check: Callable[[], Awaitable[None]]) -> DependencyHealth:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check(), _PROBE_TIMEOUT_S)
    except Exception as exc:
        return DependencyHealth("down", None, str(exc) or type(exc).__name__)
    return DependencyHealth("up", round((time.perf_counter() - started) * 1000, 2))
