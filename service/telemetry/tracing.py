"""Traces, set up in one place: the SDK, the exporters, the official instrumentations, and the one
spot where trace context crosses the broker (injected on publish, extracted on consume)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    TraceFlags,
)
from opentelemetry.util.types import Attributes, AttributeValue

from catalog import names
from service.settings import TelemetrySettings
from service.telemetry.scrub import scrub, strip_query

TRACER_NAME = "orchestrator"
_configured = False
_exported = False


def configure_tracing(telemetry: TelemetrySettings, service: str,
                      exporter: SpanExporter | None = None) -> None:
    """Install the tracer provider once per process.

    With somewhere to send spans (OTLP endpoint, console, or an exporter given by a test) every
    span is recorded at ``trace_sample_ratio`` and psycopg and redis are instrumented. With
    nowhere to send them, spans are not recorded at all, but trace ids are still made and
    propagated (server span -> task row -> AMQP headers -> worker), so logs and tasks stay
    correlated at almost no cost.
    """
    global _configured, _exported
    if _configured or not telemetry.tracing_enabled:
        return
    _configured = True
    exporters: list[tuple[SpanExporter, bool]] = []  # (exporter, batched)
    if exporter is not None:
        exporters.append((exporter, False))
    if telemetry.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = telemetry.otlp_endpoint.rstrip("/")
        if not endpoint.endswith("/v1/traces"):
            endpoint += "/v1/traces"
        exporters.append((OTLPSpanExporter(endpoint=endpoint), True))
    if telemetry.trace_console:
        exporters.append((ConsoleSpanExporter(), False))
    _exported = bool(exporters)
    ratio = telemetry.trace_sample_ratio if exporters else 0.0
    resource = Resource.create({"service.name": f"orchestrator-{service}",
                                "service.namespace": "orchestrator",
                                "deployment.environment": telemetry.environment})
    provider = TracerProvider(resource=resource,
                              sampler=ParentBased(TraceIdRatioBased(ratio)))
    for span_exporter, batched in exporters:
        scrubbed = ScrubbingExporter(span_exporter)  # every span, whichever exporter
        provider.add_span_processor(
            BatchSpanProcessor(scrubbed, schedule_delay_millis=500) if batched
            else SimpleSpanProcessor(scrubbed))
    trace.set_tracer_provider(provider)
    if exporters:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        PsycopgInstrumentor().instrument(enable_commenter=False, skip_dep_check=True)
        RedisInstrumentor().instrument()


URL_ATTRIBUTES = frozenset({"http.url", "url.full", "http.target", "url.path", "url.original"})
"""Span attributes holding a URL or request target: exported without their query string."""
DROPPED_ATTRIBUTES = frozenset({"url.query", "http.query"})


class ScrubbingExporter(SpanExporter):
    """Hands finished spans to ``exporter`` without secrets: every URL attribute cut before its
    query string (``url.query`` left out), and the scrubber run over the name, every text
    attribute, the events (recorded exceptions) and the status description. It runs where the
    exporter runs (the batch thread for OTLP), not on the request path."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export([_ScrubbedSpan(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


class _ScrubbedSpan(ReadableSpan):
    """A copy of a finished span without secrets (what it dropped is still counted)."""

    def __init__(self, span: ReadableSpan) -> None:
        status = span.status
        if status.description:
            status = Status(status.status_code, scrub(status.description))
        super().__init__(
            name=scrub(span.name), context=span.context, parent=span.parent,
            resource=span.resource, attributes=_scrubbed(span.attributes),
            events=[Event(e.name, _scrubbed(e.attributes), e.timestamp) for e in span.events],
            links=[Link(link.context, _scrubbed(link.attributes)) for link in span.links],
            kind=span.kind, status=status, start_time=span.start_time,
            end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)
        self._original = span

    @property
    def dropped_attributes(self) -> int:
        return self._original.dropped_attributes

    @property
    def dropped_events(self) -> int:
        return self._original.dropped_events

    @property
    def dropped_links(self) -> int:
        return self._original.dropped_links


def _scrubbed(attributes: Attributes) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, value in (attributes or {}).items():
        if key in DROPPED_ATTRIBUTES:
            continue
        if isinstance(value, str):
            out[key] = scrub(strip_query(value) if key in URL_ATTRIBUTES else value)
        elif isinstance(value, Sequence) and any(isinstance(v, str) for v in value):
            out[key] = [scrub(v) if isinstance(v, str) else v for v in value]
        else:
            out[key] = value
    return out


def spans_exported() -> bool:
    """Whether this process records spans (something exports them), or only propagates ids."""
    return _exported


_ids = RandomIdGenerator()


def continue_trace(traceparent: str | None) -> Span:
    """A span that records nothing: the child of ``traceparent`` (W3C), keeping the caller's
    sampled flag, or the root of a new trace. Ids only, for when nothing exports spans."""
    parent = _parse_traceparent(traceparent) if traceparent else None
    if parent is not None:
        trace_id, flags = parent
    else:
        trace_id, flags = _ids.generate_trace_id(), TraceFlags(TraceFlags.DEFAULT)
    return NonRecordingSpan(SpanContext(trace_id, _ids.generate_span_id(), is_remote=False,
                                        trace_flags=flags))


def _parse_traceparent(value: str) -> tuple[int, TraceFlags] | None:
    """``(trace id, flags)`` of a W3C ``traceparent`` (version 00), or None when malformed."""
    parts = value.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id or parts[0] == "ff":
        return None
    return trace_id, TraceFlags(flags & TraceFlags.SAMPLED)


def _format_traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def _ids_only() -> bool:
    return _configured and not _exported


def shutdown_tracing() -> None:
    """Flush spans still buffered (on process exit)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_traceparent() -> tuple[str | None, str | None]:
    """``(traceparent, trace_id)`` of the active span, or ``(None, None)`` outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return _format_traceparent(ctx), f"{ctx.trace_id:032x}"


def context_from_headers(headers: Mapping[str, Any] | None) -> context.Context:
    """The remote trace context carried by a message's headers (or a stored traceparent)."""
    return propagate.extract({k: _header_text(v) for k, v in (headers or {}).items()})


def _header_text(value: Any) -> str:
    """An AMQP header value as text (aio-pika gives strings as ``bytes``)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _messaging_attributes(operation: str, exchange: str, routing_key: str,
                          task_id: str) -> dict[str, Any]:
    return {"messaging.system": "rabbitmq", "messaging.operation.type": operation,
            "messaging.operation.name": operation, "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": routing_key,
            "messaging.message.id": task_id}


@contextmanager
def publish_span(traceparent: str | None, exchange: str, routing_key: str, task_id: str,
                 headers: dict[str, Any]) -> Iterator[Span]:
    """A PRODUCER span, child of the task's stored trace; injects itself into ``headers``."""
    if _ids_only():
        span = continue_trace(traceparent)
        headers[names.TRACEPARENT_HEADER] = _format_traceparent(span.get_span_context())
        with trace.use_span(span):
            yield span
        return
    parent = context_from_headers({names.TRACEPARENT_HEADER: traceparent} if traceparent
                                  else None)
    with tracer().start_as_current_span(
            f"{exchange or 'default'} publish", context=parent, kind=SpanKind.PRODUCER,
            attributes=_messaging_attributes("publish", exchange, routing_key, task_id)) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        headers.update(carrier)
        yield span


@contextmanager
def process_span(headers: Mapping[str, Any] | None, queue: str, routing_key: str,
                 task_id: str) -> Iterator[Span]:
    """A CONSUMER span continuing the trace carried by the message, linked to its producer."""
    if _ids_only():
        carried = (headers or {}).get(names.TRACEPARENT_HEADER)
        traceparent = _header_text(carried) if carried is not None else None
        with trace.use_span(continue_trace(traceparent)) as span:
            yield span
        return
    parent = context_from_headers(headers)
    producer = trace.get_current_span(parent).get_span_context()
    links = [Link(producer)] if producer.is_valid else []
    attributes = _messaging_attributes("process", queue, routing_key, task_id)
    with tracer().start_as_current_span(f"{queue} process", context=parent,
                                        kind=SpanKind.CONSUMER, links=links,
                                        attributes=attributes) as span:
        yield span


def current_ids() -> tuple[str | None, str | None]:
    """``(trace_id, span_id)`` as hex of the active span, for log lines."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
