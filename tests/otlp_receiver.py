"""A real OTLP/HTTP trace receiver for tests: what the orchestrator's exporters send, decoded.

It listens on 127.0.0.1 (an ephemeral port), accepts ``POST /v1/traces`` with protobuf bodies
(gzip-compressed or not), answers with an empty ``ExportTraceServiceResponse`` and keeps every
span it received, flattened into :class:`ReceivedSpan`.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str | None
    name: str
    kind: str  # the enum name, e.g. "SPAN_KIND_SERVER"
    attributes: dict[str, Any]
    links: list[tuple[str, str]]  # (trace_id, span_id)
    service_name: str | None
    start_ns: int = 0
    end_ns: int = 0
    status_code: str = "STATUS_CODE_UNSET"
    resource: dict[str, Any] = field(default_factory=dict)

    def short(self) -> str:
        parent = self.parent_span_id or "-" * 16
        return f"{self.span_id} <- {parent} {self.kind:<18} {self.service_name}: {self.name}"


def any_value(value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue``."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, which)


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


def _hex(raw: bytes) -> str | None:
    return raw.hex() if raw and any(raw) else None


def flatten(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans = []
    for resource_spans in request.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=_hex(span.parent_span_id),
                    name=span.name,
                    kind=Span.SpanKind.Name(span.kind),
                    attributes=attributes_of(span.attributes),
                    links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                    service_name=resource.get("service.name"),
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    status_code=Status.StatusCode.Name(span.status.code),
                    resource=resource,
                ))
    return spans


class OtlpReceiver:
    """The spans received so far (thread-safe), and the server that receives them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.requests = 0
        self.rejected: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                problem = receiver._problem(self.path, self.headers.get("Content-Type", ""))
                if problem:
                    receiver._reject(problem)
                    self._answer(415 if "content type" in problem else 404,
                                 problem.encode(), "text/plain")
                    return
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                try:
                    request.ParseFromString(body)
                except Exception as exc:  # a malformed body is a test failure worth seeing
                    receiver._reject(f"undecodable body: {exc}")
                    self._answer(400, b"undecodable", "text/plain")
                    return
                receiver._add(flatten(request))
                self._answer(200, ExportTraceServiceResponse().SerializeToString(), PROTOBUF)

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="otlp-receiver",
                                        daemon=True)

    @staticmethod
    def _problem(path: str, content_type: str) -> str | None:
        if path.split("?")[0] != "/v1/traces":
            return f"unknown path {path}"
        if content_type.split(";")[0].strip() != PROTOBUF:
            return f"unsupported content type {content_type!r}"
        return None

    def _reject(self, problem: str) -> None:
        with self._lock:
            self.rejected.append(problem)

    def _add(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self.requests += 1
            self._spans.extend(spans)

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def spans_of_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], Any],
                 timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll until ``predicate(spans)`` is truthy and return its value; raise on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.spans)
            if value:
                return value
            if time.monotonic() > deadline:
                listing = "\n".join(s.short() for s in self.spans[-60:])
                raise TimeoutError(f"spans not received within {timeout}s; last spans:\n"
                                   f"{listing}\nrejected: {self.rejected}")
            time.sleep(interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@contextmanager
def running_otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
