"""``/metrics``: Prometheus exposition for the whole API server, on the API port or, with
``ORCH_API_METRICS_PORT``, on that internal port only (and nothing else there)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.exceptions import NotFoundException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST

from service.api.state import Services
from service.telemetry.exposition import render
from service.telemetry.http import flush_http_metrics


@get("/metrics", include_in_schema=False)  # METRICS_PATH
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    services: Services = request.app.state.services
    await services.sampler.refresh()
    flush_http_metrics()
    return Response(render(services.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsPort(ASGIMiddleware):
    """``/metrics`` only on ``port``, and only ``/metrics`` there."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, port: int) -> None:
        self.port = port

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     next_app: ASGIApp) -> None:
        server = scope.get("server")
        on_metrics_port = bool(server) and server[1] == self.port  # type: ignore[index]
        if on_metrics_port != (scope["path"] == METRICS_PATH):
            raise NotFoundException(f"{scope['path']} is not served on this port")
        await next_app(scope, receive, send)


METRICS_PATH = "/metrics"
