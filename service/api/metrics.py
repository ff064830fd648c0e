"""``/metrics``: Prometheus exposition for the whole API server."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST

from service.api.state import Services
from service.telemetry.exposition import render
from service.telemetry.http import flush_http_metrics


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    services: Services = request.app.state.services
    await services.sampler.refresh()
    flush_http_metrics()
    return Response(render(services.registry), media_type=CONTENT_TYPE_LATEST)
