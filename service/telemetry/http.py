"""HTTP telemetry as one ASGI wrapper: RED metrics by route template and, when spans are
exported, the server span's name.

Litestar writes the matched route's template into the ASGI scope while routing; this wrapper
reads it after the request, so labels and span names stay bounded (``/v1/tasks/{task_id:str}``,
never a raw path).

Cost: a request only bumps process-local tallies (a dict lookup, a bisect, two additions); the
probe (every second) and every ``/metrics`` scrape move them into the prometheus-client metrics.
Writing the shared multiprocess files on every request cost three times as much.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import context, trace

from catalog import metrics, names
from service.telemetry.tracing import continue_trace, spans_exported

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
        self._tallies: dict[tuple[str, str, int], _Tally] = {}
        _instances.append(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        answered: float | None = None  # a stream's latency is the time to its headers

        async def send_and_note_status(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                if _is_event_stream(message):
                    answered = time.perf_counter()
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
                ended = answered if answered is not None else time.perf_counter()
                self._observe(route, method, status, ended - started)

    def _observe(self, route: str, method: str, status: int, seconds: float) -> None:
        tally = self._tallies.get((route, method, status))
        if tally is None:
            tally = self._tallies[(route, method, status)] = _Tally()
        tally.count += 1
        tally.seconds += seconds
        tally.buckets[bisect.bisect_left(metrics.HTTP_BUCKETS, seconds)] += 1

    def flush(self) -> None:
        """Move the tallies into the metrics (called by the probe and before each scrape)."""
        tallies, self._tallies = self._tallies, {}
        for (route, method, status), tally in tallies.items():
            metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc(tally.count)
            add_to_histogram(metrics.HTTP_REQUEST_DURATION.labels(route, method), tally.buckets,
                             tally.seconds)


def _is_event_stream(start: Message) -> bool:
    """A Server-Sent Events answer: it lasts as long as what it follows."""
    return any(name.lower() == b"content-type" and value.startswith(b"text/event-stream")
               for name, value in start.get("headers", ()))


class _Tally:
    __slots__ = ("buckets", "count", "seconds")

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * (len(metrics.HTTP_BUCKETS) + 1)  # the last one is +Inf


def add_to_histogram(child: Any, buckets: list[int], total: float) -> None:
    """Add pre-bucketed observations to a histogram child (what ``observe`` does one at a
    time; prometheus-client keeps per-bucket values in ``_buckets``, cumulative on export)."""
    for index, count in enumerate(buckets):
        if count:
            child._buckets[index].inc(count)
    child._sum.inc(total)


def _name_server_span(scope: Scope) -> None:
    """Name the active (server) span after the matched route template."""
    span = trace.get_current_span()
    if span.is_recording():
        route = scope.get("path_template") or UNMATCHED
        span.update_name(f"{scope.get('method', 'GET')} {route}")
        span.set_attribute("http.route", route)


_instances: list[RequestTelemetry] = []


def flush_http_metrics() -> None:
    """Publish this process's HTTP tallies and in-flight count (probe and scrape call this)."""
    for instance in _instances:
        if instance.record_metrics:
            instance.flush()
    metrics.HTTP_IN_FLIGHT.set(sum(i.in_flight for i in _instances if i.record_metrics))


UNTRACED_PATHS = ("/health/live", "/metrics")
"""Liveness probes and scrapes: many, cheap, and no use in a trace."""


def traced(app: ASGIApp) -> ASGIApp:
    """Each request (but ``UNTRACED_PATHS``) in a trace, continuing a ``traceparent`` the client
    sent.

    When spans are exported: the official ASGI instrumentation, one server span per request (no
    spans for each body chunk). When nothing exports them: ``TraceIds``, which only makes the
    ids (the official middleware costs ~15% of the API's CPU even when it records nothing).
    """
    if not spans_exported():
        return TraceIds(app)
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    def span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
        return str(scope.get("method", "HTTP")), {}  # renamed to the route once routed

    return OpenTelemetryMiddleware(app, default_span_details=span_details,
                                   exclude_spans=["receive", "send"],
                                   excluded_urls=",".join(p.lstrip("/") for p in UNTRACED_PATHS))


class TraceIds:
    """Puts each request in a trace without recording a span: the server span's ids, as the
    child of the client's ``traceparent`` header or the root of a new trace, so the task row,
    the AMQP headers and the log lines still carry them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        traceparent = next((value.decode("latin-1") for name, value in scope["headers"]
                            if name == _TRACEPARENT), None)
        token = context.attach(trace.set_span_in_context(continue_trace(traceparent)))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)


_TRACEPARENT = names.TRACEPARENT_HEADER.encode()
