"""Logging, configured in one place: JSON lines on stdout (or a human format), stdlib routed in."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import msgspec
from loguru import logger

from service.settings import Settings

_CONTEXT_KEYS = ("trace_id", "span_id", "task_id", "agent", "attempt", "worker_id")
_encode = msgspec.json.Encoder().encode


def _json_sink(service: str) -> Any:
    def sink(message: Any) -> None:
        record = message.record
        line: dict[str, Any] = {
            "time": record["time"].isoformat(),
            "level": record["level"].name,
            "logger": record["name"],
            "message": record["message"],
            "service": service,
        }
        extra = record["extra"]
        line.update({k: extra[k] for k in _CONTEXT_KEYS if k in extra})
        if record["exception"] is not None:
            line["exception"] = "".join(
                traceback.format_exception(*record["exception"]))
        sys.stdout.write(_encode(line).decode() + "\n")
        sys.stdout.flush()
    return sink


class _InterceptHandler(logging.Handler):
    """Send standard-library records (uvicorn, aio-pika, psycopg) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(settings: Settings, service: str) -> None:
    """Replace every handler with one sink; call once at process start."""
    logger.remove()
    if settings.log_format == "json":
        logger.add(_json_sink(service), level=settings.log_level.upper())
    else:
        logger.add(sys.stderr, level=settings.log_level.upper(),
                   format="{time:HH:mm:ss.SSS} {level: <7} " + service
                          + " {name}: {message} {extra}")
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
    for name in ("uvicorn", "uvicorn.error", "aio_pika", "aiormq", "psycopg"):
        logging.getLogger(name).handlers = [_InterceptHandler()]
        logging.getLogger(name).propagate = False
