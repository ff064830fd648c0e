"""``/v1/tasks``: submit, read, list, timeline, cancel, requeue."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from catalog import metrics
from service.api.schemas import EventsOut, SubmitTask, TaskOut, TaskPage
from service.api.state import Services
from service.db.tasks import NewTask
from service.domain import Task, TaskStatus, input_checksum
from service.errors import UnknownAgent
from service.telemetry.tracing import current_traceparent

_MAX_IDEMPOTENCY_KEY = 200


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
    return base64.urlsafe_b64encode(f"{task.created_at.isoformat()}|{task.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, _, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(at), str(uuid.UUID(task_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationException(
            "invalid cursor: pass the next_cursor value of a previous page unchanged",
            extra=[{"source": "query", "key": "cursor", "message": "not a cursor"}]) from None


def _task_response(task: Task, status_code: int, **headers: str) -> Response[TaskOut]:
    return Response(TaskOut.of(task), status_code=status_code,
                    headers={"Location": f"/v1/tasks/{task.id}", **headers})


class TaskController(Controller):
    path = "/v1/tasks"
    tags = ["tasks"]

    @post("/", status_code=HTTP_202_ACCEPTED, opt={"scope": "tasks:write"},
          summary="Submit a task", description="Stored durably before the answer; 202 Accepted.")
    async def submit(
        self, request: Request[Any, Any, Any], data: SubmitTask,
        idempotency_key: Annotated[str | None, Parameter(
            header="Idempotency-Key", required=False, max_length=_MAX_IDEMPOTENCY_KEY)] = None,
    ) -> Response[TaskOut]:
        services: Services = request.app.state.services
        settings = services.settings
        if data.agent not in services.agents:
            raise UnknownAgent(data.agent, services.agents)
        timeout_s = data.timeout_s if data.timeout_s is not None else settings.tasks.timeout_s
        if timeout_s > settings.tasks.max_timeout_s:
            raise ValidationException(
                f"timeout_s {timeout_s:g} is above the limit of {settings.tasks.max_timeout_s:g}s",
                extra=[{"source": "body", "key": "timeout_s",
                        "message": f"must be at most {settings.tasks.max_timeout_s:g}"}])
        max_attempts = data.max_attempts or settings.tasks.max_attempts
        traceparent, trace_id = current_traceparent()
        new = NewTask(
            agent=data.agent, input=data.input, priority=data.priority,
            max_attempts=max_attempts, timeout_s=timeout_s,
            checksum=input_checksum(data.input),
            idempotency_key=idempotency_key, trace_id=trace_id, traceparent=traceparent,
        )
        task, created = await services.tasks.submit(new)
        if not created:
            return _task_response(task, HTTP_200_OK, **{"Idempotent-Replayed": "true"})
        services.relay.wake()
        metrics.TASKS_SUBMITTED.labels(task.agent).inc()
        services.cache.put_task(task)
        return _task_response(task, HTTP_202_ACCEPTED)

    @get("/{task_id:str}", opt={"scope": "tasks:read"}, summary="Get a task")
    async def get_task(self, request: Request[Any, Any, Any], task_id: str) -> TaskOut:
        services: Services = request.app.state.services
        task_id = parse_task_id(task_id)
        task = await services.cache.get_task(task_id)
        if task is None:
            task = await services.tasks.get(task_id)
            services.cache.put_task(task)
        return TaskOut.of(task)

    @get("/", opt={"scope": "tasks:read"}, summary="List tasks, newest first")
    async def list_tasks(
        self, request: Request[Any, Any, Any],
        status: TaskStatus | None = None,
        agent: str | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        services: Services = request.app.state.services
        if agent is not None and agent not in services.agents:
            raise UnknownAgent(agent, services.agents)
        after = decode_cursor(cursor) if cursor else None
        tasks = await services.tasks.page(status=status, agent=agent, limit=limit + 1,
                                          after=after)
        page, more = tasks[:limit], len(tasks) > limit
        return TaskPage([TaskOut.of(t) for t in page],
                        encode_cursor(page[-1]) if more and page else None)

    @get("/{task_id:str}/events", opt={"scope": "tasks:read"},
         summary="The task's timeline: every state transition and message hop")
    async def events(self, request: Request[Any, Any, Any], task_id: str) -> EventsOut:
        services: Services = request.app.state.services
        task_id = parse_task_id(task_id)
        return EventsOut(task_id, await services.tasks.events(task_id))

    @post("/{task_id:str}/cancel", status_code=HTTP_200_OK, opt={"scope": "tasks:write"},
          summary="Cancel a task", description="Queued or retrying tasks never run; a running"
          " task gets a cooperative cancel and ends as cancelled when its agent stops.")
    async def cancel(self, request: Request[Any, Any, Any], task_id: str) -> TaskOut:
        services: Services = request.app.state.services
        task = await services.tasks.cancel(parse_task_id(task_id), _actor(request))
        if task.status is TaskStatus.RUNNING:
            await services.publisher.broadcast_cancel(task.id)
        else:
            metrics.TASKS_CANCELLED.labels(task.agent).inc()
        await services.cache.put_task_now(task)
        return TaskOut.of(task)

    @post("/{task_id:str}/retry", status_code=HTTP_202_ACCEPTED, opt={"scope": "tasks:write"},
          summary="Requeue a dead task with a fresh attempt budget")
    async def retry(self, request: Request[Any, Any, Any], task_id: str) -> TaskOut:
        services: Services = request.app.state.services
        task = await services.tasks.requeue(parse_task_id(task_id), _actor(request))
        services.relay.wake()
        await services.cache.put_task_now(task)
        return TaskOut.of(task)


def _actor(request: Request[Any, Any, Any]) -> str:
    key = getattr(request.state, "api_key", None)
    return f"api-key:{key.name}" if key is not None else "api"
