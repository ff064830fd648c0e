"""Trace-context propagation in one place: what goes into message headers and task rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import context, propagate


def current_traceparent() -> tuple[str | None, str | None]:
    """``(traceparent, trace_id)`` of the active span, or ``(None, None)`` outside a trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    traceparent = carrier.get("traceparent")
    if not traceparent:
        return None, None
    return traceparent, traceparent.split("-")[1]


def context_from_headers(headers: Mapping[str, Any] | None) -> context.Context:
    """The remote trace context carried by a message's headers."""
    carrier = {k: v.decode() if isinstance(v, bytes) else str(v)
               for k, v in (headers or {}).items()}
    return propagate.extract(carrier)
