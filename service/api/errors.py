"""One place that maps errors to HTTP answers: a 4xx that says what to fix, never a traceback."""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

import psycopg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from loguru import logger
from psycopg_pool import PoolTimeout

from service.errors import (
    DeadLetterNotFound,
    DependencyUnavailable,
    IdempotencyConflict,
    InputTooLarge,
    InvalidTransition,
    KeyProblem,
    OrchestratorError,
    ScheduleExists,
    ScheduleNotFound,
    TaskNotFound,
    TooManyRequests,
    UnknownAgent,
)
from service.telemetry.scrub import scrub

_STATUS_OF: dict[type[OrchestratorError], int] = {
    TaskNotFound: 404,
    DeadLetterNotFound: 404,
    ScheduleNotFound: 404,
    ScheduleExists: 409,
    UnknownAgent: 422,
    InvalidTransition: 409,
    IdempotencyConflict: 409,
    InputTooLarge: 413,
    DependencyUnavailable: 503,
    TooManyRequests: 429,
}


INTERNAL_ERROR = "internal error; the incident has been logged"


def problem(status: int, detail: str, errors: list[dict[str, Any]] | None = None,
            **extra: Any) -> Response[dict[str, Any]]:
    """The error body: scrubbed (a detail may echo what the client sent, secrets too), and a
    500 never says more than ``INTERNAL_ERROR`` (no exception text, no traceback)."""
    if status == 500:
        detail, errors, extra = INTERNAL_ERROR, None, {}
    body: dict[str, Any] = {"status": status, "detail": scrub(detail), **extra}
    if errors:
        body["errors"] = [{key: scrub(value) if isinstance(value, str) else value
                           for key, value in error.items()} for error in errors]
    return Response(body, status_code=status, media_type=MediaType.JSON)


# msgspec names the field in the message when the error is about the body object itself
_NAMED_FIELD = re.compile(r"Object (?:missing required|contains unknown) field `([^`]+)`")


def _field_errors(extra: Any) -> list[dict[str, Any]]:
    items = extra if isinstance(extra, list) else [extra] if extra else []
    out = []
    for item in items:
        if isinstance(item, dict):
            source, key = item.get("source"), item.get("key")
            message = str(item.get("message", item))
            if isinstance(source, Enum):  # Litestar's ParamType.QUERY -> "query"
                source = source.value
            if source == "body" and key == "data":  # an error about the whole body
                named = _NAMED_FIELD.search(message)
                key = named.group(1) if named else None
                if message == "'data'":  # Litestar's KeyError for a missing body
                    message = ('the request body is empty: send a JSON object such as'
                               ' {"agent": "echo"}')
            where = ".".join(str(p) for p in (source, key) if p)
            out.append({"field": where or None, "message": message})
        else:
            out.append({"field": None, "message": str(item)})
    return out


def _client_detail(request: Request[Any, Any, Any], exc: HTTPException) -> str:
    """Litestar's own 4xx texts, made to say what to fix."""
    if isinstance(exc, RequestEntityTooLarge):
        limit = request.app.request_max_body_size
        return (f"request body too large: the limit is {limit} bytes"
                " (ORCH_MAX_BODY_BYTES on the server)")
    if isinstance(exc.__cause__, SerializationException):  # the body did not decode
        reason = exc.detail.removeprefix("JSON is malformed: ")
        return f"request body is not valid JSON: {reason}"
    return exc.detail


def http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 500:
        return unexpected_error(request, exc)
    detail = _client_detail(request, exc)
    errors = _field_errors(exc.extra)
    if isinstance(exc, ValidationException) and errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"]
                           for e in errors)
    headers = getattr(exc, "headers", None) or {}
    response = problem(exc.status_code, detail, errors)
    response.headers.update(headers)
    return response


def orchestrator_error(request: Request[Any, Any, Any], exc: OrchestratorError) -> Response[Any]:
    status = exc.status if isinstance(exc, KeyProblem) else next(
        (code for kind, code in _STATUS_OF.items() if isinstance(exc, kind)), 400)
    extra: dict[str, Any] = {}
    if isinstance(exc, UnknownAgent):
        extra["known_agents"] = exc.known
    if isinstance(exc, IdempotencyConflict):
        extra["task_id"] = exc.task_id
    response = problem(status, str(exc), **extra)
    if isinstance(exc, TooManyRequests):
        response.headers.update(exc.headers)
    return response


def database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.error("database unavailable while serving {} {}: {}", request.method,
                 request.scope.get("path_template", request.url.path), exc)
    response = problem(503, "the database is unavailable; retry shortly")
    response.headers["Retry-After"] = "5"
    return response


def unstorable_value(request: Request[Any, Any, Any], exc: psycopg.DataError) -> Response[Any]:
    """A value that is valid JSON but that PostgreSQL cannot store (``\\u0000`` in a string)."""
    diag = exc.diag
    reason = "; ".join(part for part in (diag.message_primary, diag.message_detail) if part)
    return problem(422, f"a value in the request cannot be stored: {reason or exc}; remove it"
                        " (text may not contain the NUL character \\u0000)")


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    logger.opt(exception=exc).error("unhandled error serving {} {}", request.method,
                                    request.url.path)
    return problem(500, INTERNAL_ERROR)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    HTTPException: http_exception,
    OrchestratorError: orchestrator_error,
    psycopg.OperationalError: database_error,
    psycopg.DataError: unstorable_value,
    PoolTimeout: database_error,
    Exception: unexpected_error,
}
