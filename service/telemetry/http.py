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

    def __init__(self, app: ASGIApp, *, record_metrics: bool = True,
                 name_spans: bool = True) -> None:
        self.app = app
        self.record_metrics = record_metrics
        self.name_spans = name_spans
        self.in_flight = 0
        """Requests being answered; published to the gauge by the probe (no write per request)."""
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}
        _instances.append(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.name_spans:
                    # now, not after the app returns: the ASGI instrumentation ends the server
                    # span as soon as the last body chunk is sent
                    _name_server_span(scope)
            await send(message)

        started = time.perf_counter()
        self.in_flight += 1
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self.in_flight -= 1
            route = scope.get("path_template") or UNMATCHED
            method = scope.get("method", "GET")
            if self.name_spans:
                _name_server_span(scope)  # again, for a request that raised
            if self.record_metrics:
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


def _name_server_span(scope: Scope) -> None:
    """Name the active (server) span after the matched route template."""
    span = trace.get_current_span()
    if span.is_recording():
        route = scope.get("path_template") or UNMATCHED
        span.update_name(f"{scope.get('method', 'GET')} {route}")
        span.set_attribute("http.route", route)


_instances: list[RequestTelemetry] = []


def publish_in_flight() -> None:
    """Copy the in-flight count of this process to its gauge (called by the probe)."""
    metrics.HTTP_IN_FLIGHT.set(sum(i.in_flight for i in _instances if i.record_metrics))


def traced(app: ASGIApp) -> ASGIApp:
    """The official ASGI instrumentation around ``app``: one server span per request (no spans
    for each body chunk), continuing a ``traceparent`` the client sent."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    def span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
        return str(scope.get("method", "HTTP")), {}  # renamed to the route once routed

    return OpenTelemetryMiddleware(app, default_span_details=span_details,
                                   exclude_spans=["receive", "send"],
                                   excluded_urls="health/live,metrics")
