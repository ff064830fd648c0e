"""``/v1/tasks``: submit, read, list, timeline, cancel, requeue."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from catalog import metrics
from service.api.auth import actor, request_key
from service.api.openapi import problems
from service.api.schemas import BODIES, EventsOut, SubmitTask, TaskOut, TaskPage
from service.api.state import Services
from service.api.task_fields import task_fields
from service.callback_target import check_url
from service.db.tasks import ID_PREFIX, NewTask, id_range
from service.domain import Task, TaskStatus, json_text
from service.errors import UnknownAgent
from service.telemetry.tracing import current_traceparent

_MAX_IDEMPOTENCY_KEY = 200
_CURSOR = r"[0-9]{1,16}-[0-9a-f]{32}"
"""A page's ``next_cursor``: the creation time of its last task (microseconds since 1970)
and that task's id. Every string of this form is a cursor (the page after that point)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BODY = f"({'|'.join(BODIES)})"
_INCLUDE = f"{_BODY}(,{_BODY})*"

TaskId = Annotated[str, Parameter(schema_extra={"format": OpenAPIFormat.UUID})]


def parse_task_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise ValidationException(f"task id {raw!r} is not a UUID",
                                  extra=[{"source": "path", "key": "task_id",
                                          "message": "expected a UUID such as"
                                                     " 3f2b8c4e-1d2a-4b7e-9c1f-0a2b3c4d5e6f"}]
                                  ) from None


def encode_cursor(task: Task) -> str:
    micros = (task.created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{uuid.UUID(task.id).hex}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not re.fullmatch(_CURSOR, cursor):
        raise ValidationException(
            "invalid cursor: pass the next_cursor value of a previous page unchanged",
            extra=[{"source": "query", "key": "cursor", "message": "not a cursor"}])
    micros, _, task_id = cursor.partition("-")
    return _EPOCH + timedelta(microseconds=int(micros)), str(uuid.UUID(task_id))


def _run_at(text: str | None) -> datetime | None:
    """``run_at`` as an aware UTC time; 400 naming the field when it is not one."""
    if text is None:
        return None
    problem = None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        problem = "is not an ISO 8601 time (e.g. 2026-12-03T18:00:00Z)"
    else:
        if when.tzinfo is None:
            problem = "has no offset: add Z or one such as +02:00"
    if problem is not None:
        raise ValidationException(f"run_at {text!r} {problem}", extra=[
            {"source": "body", "key": "run_at", "message": problem}])
    return when.astimezone(UTC)


def _callback_url(url: str | None, allow_private: bool) -> str | None:
    """``callback_url`` when callbacks may call it; 400 naming the field when not."""
    problem = check_url(url, allow_private) if url is not None else None
    if problem is not None:
        raise ValidationException(f"callback_url {problem}", extra=[
            {"source": "body", "key": "callback_url", "message": problem}])
    return url


def visible_tenant(request: Request[Any, Any, Any]) -> str | None:
    """The tenant whose tasks the caller may see (``None``: an admin sees all)."""
    return request_key(request).visible_tenant


def _task_response(task: Task, status_code: int, **headers: str) -> Response[TaskOut]:
    return Response(TaskOut.of(task), status_code=status_code,
                    headers={"Location": f"/v1/tasks/{task.id}", **headers})


class TaskController(Controller):
    path = "/v1/tasks"
    tags = ["tasks"]

    @post("/", status_code=HTTP_202_ACCEPTED, opt={"scope": "tasks:write"},
          responses={**problems(409, 413, 415, 422), 200: ResponseSpec(
              TaskOut, generate_examples=False, description="The task an earlier submission"
              " with the same Idempotency-Key and body created (Idempotent-Replayed: true)")},
          summary="Submit a task", description="Stored durably before the answer; 202 Accepted.")
    async def submit(
        self, request: Request[Any, Any, Any], data: SubmitTask,
        idempotency_key: Annotated[str | None, Parameter(
            header="Idempotency-Key", required=False, max_length=_MAX_IDEMPOTENCY_KEY)] = None,
    ) -> Response[TaskOut]:
        services: Services = request.app.state.services
        key = request_key(request)
        fields = task_fields(services, key, data.agent, data.input, data.priority,
                             data.max_attempts, data.timeout_s)
        run_at = _run_at(data.run_at)
        callback_url = _callback_url(data.callback_url,
                                     services.settings.callbacks.allow_private)
        await services.limits.admit_task(key)
        traceparent, trace_id = current_traceparent()
        new = NewTask(
            agent=fields.agent, input=fields.input, tenant=key.tenant, priority=fields.priority,
            max_attempts=fields.max_attempts, timeout_s=fields.timeout_s,
            checksum=fields.checksum, run_at=run_at, delay_s=data.delay_s or 0.0,
            concurrency_key=data.concurrency_key, callback_url=callback_url,
            idempotency_key=idempotency_key, trace_id=trace_id, traceparent=traceparent,
        )
        task, created = await services.tasks.submit(new)
        if not created:
            return _task_response(task, HTTP_200_OK, **{"Idempotent-Replayed": "true"})
        services.relay.wake()
        metrics.TASKS_SUBMITTED.labels(task.agent).inc()
        services.cache.put_task(task)
        return _task_response(task, HTTP_202_ACCEPTED)

    @get("/{task_id:str}", opt={"scope": "tasks:read"}, summary="Get a task",
         responses=problems(404))
    async def get_task(self, request: Request[Any, Any, Any], task_id: TaskId) -> TaskOut:
        services: Services = request.app.state.services
        task_id, tenant = parse_task_id(task_id), visible_tenant(request)
        task = await services.cache.get_task(task_id)
        if task is None or (tenant is not None and task.tenant != tenant):
            task = await services.tasks.get(task_id, tenant)  # another tenant's: 404
            services.cache.put_task(task)
        return TaskOut.of(task)

    @get("/", opt={"scope": "tasks:read"}, summary="List tasks, newest first",
         responses=problems(422))
    async def list_tasks(
        self, request: Request[Any, Any, Any],
        status: TaskStatus | None = None,
        agent: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Parameter(
            description="the next_cursor of the page before",
            schema_extra={"pattern": f"^({_CURSOR})?$"})] = None,
        include: Annotated[str | None, Parameter(
            description="'input', 'result' or 'input,result': add them to every item (a page"
                        " then ends early at ORCH_LIST_MAX_BYTES)",
            schema_extra={"pattern": f"^({_INCLUDE})?$"})] = None,
        id_prefix: Annotated[str | None, Parameter(
            description="only tasks whose id starts with these hex digits",
            schema_extra={"pattern": f"^({ID_PREFIX})?$"})] = None,
        stuck: Annotated[bool, Parameter(
            description="only stuck tasks: running past their timeout, or due and waiting"
                        " longer than ORCH_STUCK_QUEUED_S")] = False,
    ) -> TaskPage:
        services: Services = request.app.state.services
        if agent is not None and agent not in services.agents:
            raise UnknownAgent(agent, services.agents)
        bodies = _parse_include(include)
        after = decode_cursor(cursor) if cursor else None
        tasks = await services.tasks.page(
            status=status, agent=agent, limit=limit + 1, after=after,
            tenant=visible_tenant(request), with_bodies=bool(bodies),
            id_prefix=_parse_id_prefix(id_prefix),
            stuck_queued_s=services.settings.tasks.stuck_queued_s if stuck else None)
        page, more = tasks[:limit], len(tasks) > limit
        items = [TaskOut.of(t, bodies) for t in page]
        if bodies:
            kept = _within_budget(items, services.settings.api.list_max_bytes)
            more, page, items = more or kept < len(items), page[:kept], items[:kept]
        return TaskPage(items, encode_cursor(page[-1]) if more and page else None)

    @get("/{task_id:str}/events", opt={"scope": "tasks:read"}, responses=problems(404),
         summary="The task's timeline: every state transition and message hop")
    async def events(self, request: Request[Any, Any, Any], task_id: TaskId) -> EventsOut:
        services: Services = request.app.state.services
        task_id = parse_task_id(task_id)
        return EventsOut(task_id, await services.tasks.events(task_id, visible_tenant(request)))

    @post("/{task_id:str}/cancel", status_code=HTTP_200_OK, opt={"scope": "tasks:write"},
          responses=problems(404, 409),
          summary="Cancel a task", description="Queued or retrying tasks never run; a running"
          " task gets a cooperative cancel and ends as cancelled when its agent stops.")
    async def cancel(self, request: Request[Any, Any, Any], task_id: TaskId) -> TaskOut:
        services: Services = request.app.state.services
        task = await services.tasks.cancel(parse_task_id(task_id), actor(request),
                                           visible_tenant(request))
        if task.status is TaskStatus.RUNNING:
            await services.publisher.broadcast_cancel(task.id)
        else:
            metrics.TASKS_CANCELLED.labels(task.agent).inc()
        await services.cache.put_task_now(task)
        return TaskOut.of(task)

    @post("/{task_id:str}/retry", status_code=HTTP_202_ACCEPTED, opt={"scope": "tasks:write"},
          responses=problems(404, 409),
          summary="Requeue a dead task with a fresh attempt budget")
    async def retry(self, request: Request[Any, Any, Any], task_id: TaskId) -> TaskOut:
        services: Services = request.app.state.services
        task = await services.tasks.requeue(parse_task_id(task_id), actor(request),
                                            visible_tenant(request))
        services.relay.wake()
        await services.cache.put_task_now(task)
        return TaskOut.of(task)


def _parse_id_prefix(prefix: str | None) -> str | None:
    if not prefix:
        return None
    try:
        id_range(prefix)
    except ValueError as exc:
        raise ValidationException(
            f"id_prefix: {exc}", extra=[{"source": "query", "key": "id_prefix",
                                         "message": "hex digits of a task id"}]) from None
    return prefix


def _parse_include(include: str | None) -> tuple[str, ...]:
    if not include:
        return ()
    if not re.fullmatch(_INCLUDE, include):
        unknown = sorted(set(include.split(",")) - set(BODIES))
        raise ValidationException(
            f"include: unknown {', '.join(map(repr, unknown))}; give input, result or"
            " input,result (no spaces)",
            extra=[{"source": "query", "key": "include", "message": "input and/or result"}])
    return tuple(include.split(","))


def _within_budget(items: list[TaskOut], budget: int) -> int:
    """How many of ``items`` fit in ``budget`` bytes of JSON (at least one)."""
    used = 0
    for count, item in enumerate(items):
        used += len(json_text(item))
        if used > budget and count:
            return count
    return len(items)
