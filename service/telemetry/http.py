"""HTTP telemetry as one ASGI wrapper: RED metrics by route template and the server span's name.

Litestar writes the matched route's template into the ASGI scope while routing; this wrapper
reads it after the request, so labels and span names stay bounded (``/v1/tasks/{task_id:str}``,
never a raw path). Children of labelled metrics are cached: a request costs a dict lookup.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import trace

from service.telemetry import metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "unmatched"


class RequestTelemetry:
    """Counts, times and names every HTTP request; passes other scopes (lifespan) through."""

    def __init__(self, app: ASGIApp, *, record_metrics: bool = True) -> None:
        self.app = app
        self.record_metrics = record_metrics
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        if self.record_metrics:
            metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("path_template") or UNMATCHED
            method = scope.get("method", "GET")
            span = trace.get_current_span()
            if span.is_recording():
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            if self.record_metrics:
                metrics.HTTP_IN_FLIGHT.dec()
                self._observe(route, method, status, time.perf_counter() - started)

    def _observe(self, route: str, method: str, status: int, seconds: float) -> None:
        counter = self._counters.get((route, method, status))
        if counter is None:
            counter = self._counters[(route, method, status)] = metrics.HTTP_REQUESTS.labels(
                route, method, str(status))
        counter.inc()
        timer = self._timers.get((route, method))
        if timer is None:
            timer = self._timers[(route, method)] = metrics.HTTP_REQUEST_DURATION.labels(
                route, method)
        timer.observe(seconds)


def traced(app: ASGIApp) -> ASGIApp:
    """The official ASGI instrumentation around ``app``: one server span per request (no spans
    for each body chunk), continuing a ``traceparent`` the client sent."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    def span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
        return str(scope.get("method", "HTTP")), {}  # renamed to the route once routed

    return OpenTelemetryMiddleware(app, default_span_details=span_details,
                                   exclude_spans=["receive", "send"],
                                   excluded_urls="health/live,metrics")
