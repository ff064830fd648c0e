"""Logging, configured in one place: JSON lines on stdout (or a human format), the standard
library routed in, trace and task ids on every line that has them, secrets scrubbed."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any, TextIO

import msgspec
from loguru import logger

from service.settings import TelemetrySettings
from service.telemetry.scrub import scrub as scrub  # re-exported: the scrubber log users know
from service.telemetry.tracing import current_ids

CONTEXT_KEYS = ("trace_id", "span_id", "task_id", "agent", "attempt", "worker_id")
_encode = msgspec.json.Encoder().encode


def _add_context(record: Any) -> None:
    """Patcher: the active span's ids, and no secrets in the message."""
    extra = record["extra"]
    if "trace_id" not in extra:
        trace_id, span_id = current_ids()
        if trace_id:
            extra["trace_id"], extra["span_id"] = trace_id, span_id
    record["message"] = scrub(record["message"])


def _json_line(record: Any, service: str) -> str:
    line: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "logger": record["name"],
        "message": record["message"],
        "service": service,
    }
    extra = record["extra"]
    line.update({k: extra[k] for k in CONTEXT_KEYS if k in extra})
    if record["exception"] is not None:
        line["exception"] = scrub("".join(traceback.format_exception(*record["exception"])))
    return _encode(line).decode()


def _json_sink(service: str) -> Any:
    def sink(message: Any) -> None:
        sys.stdout.write(_json_line(message.record, service) + "\n")
        sys.stdout.flush()
    return sink


def _human_sink(stream: TextIO) -> Any:
    """The human line as loguru formats it (with its traceback), scrubbed as a whole: the
    traceback and the bound ``extra`` values are only text by then."""
    def sink(message: Any) -> None:
        stream.write(scrub(str(message)))
        stream.flush()
    return sink


def _json_file_format(service: str) -> Any:
    """A loguru format function writing the JSON line (the template only refers to it)."""
    def template(record: Any) -> str:
        record["extra"]["_json_line"] = _json_line(record, service)
        return "{extra[_json_line]}\n"
    return template


class _InterceptHandler(logging.Handler):
    """Send standard-library records (uvicorn, aio-pika, psycopg) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).bind(stdlib=record.name).log(
            level, record.getMessage())


def configure_logging(telemetry: TelemetrySettings, service: str) -> None:
    """Replace every handler with one sink; call once at process start."""
    logger.remove()
    logger.configure(patcher=_add_context)
    level = telemetry.log_level.upper()
    # no sink shows variables' values in a traceback (diagnose), which would print passwords
    # and request bodies; the traceback itself stays, from the frame that caught it down
    safe: dict[str, Any] = {"level": level, "diagnose": False, "backtrace": False}
    if telemetry.log_format == "json":
        logger.add(_json_sink(service), **safe)
    else:
        logger.add(_human_sink(sys.stderr), colorize=sys.stderr.isatty(), **safe,
                   format="{time:HH:mm:ss.SSS} {level: <7} " + service
                          + " {name}: {message} {extra}")
    if telemetry.log_file:  # JSON lines whatever the terminal shows: for grep and the runbook
        logger.add(telemetry.log_file, format=_json_file_format(service),
                   rotation="50 MB", retention=2, catch=True, **safe)
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
    for name in ("uvicorn", "uvicorn.error", "aio_pika", "aiormq", "psycopg", "psycopg.pool"):
        logging.getLogger(name).handlers = [_InterceptHandler()]
        logging.getLogger(name).propagate = False
