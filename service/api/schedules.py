"""``/v1/schedules``: recurring schedules of the caller's tenant (``orchestrator schedule``).

A schedule creates one task per due time of its cron expression, in its time zone, with the
fields a submission has; the API processes fire it (``service.scheduler``), each due time once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Self

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from service import cron
from service.api.auth import actor, request_key
from service.api.openapi import problems
from service.api.schemas import TaskBody
from service.api.state import Services
from service.api.task_fields import task_fields
from service.cron import Missed
from service.db.schedules import NewSchedule

NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
Name = Annotated[str, msgspec.Meta(pattern=NAME, description=(
    "lowercase letters, digits, '_', '.' and '-'; unique within the tenant"))]
PathName = Annotated[str, Parameter(pattern=NAME, max_length=63)]


class CreateSchedule(TaskBody, forbid_unknown_fields=True, kw_only=True):
    """A recurring schedule: the task to create and when."""

    name: Name
    cron: Annotated[str, msgspec.Meta(min_length=9, max_length=200, description=(
        "five fields: minute hour day-of-month month day-of-week, e.g. '*/5 * * * *'"))]
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64, description=(
        "IANA time zone the cron expression is read in"))] = "UTC"
    missed: Annotated[Missed, msgspec.Meta(description=(
        "due times missed while no API ran: skip fires only the latest, if at most"
        " ORCH_SCHEDULE_GRACE_S late; catch_up fires each one"))] = "skip"


class ScheduleOut(msgspec.Struct):
    name: str
    tenant: str
    cron: str
    timezone: str
    missed: str
    agent: str
    input: Any
    priority: int
    max_attempts: int
    timeout_s: float
    concurrency_key: str | None
    paused: bool
    next_due_at: datetime
    last_due_at: datetime | None
    last_fired_at: datetime | None
    last_task_id: str | None
    fired: int
    skipped: int
    created_at: datetime
    created_by: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Self:
        return cls(**{f: row[f] for f in cls.__struct_fields__})


class SchedulesOut(msgspec.Struct):
    schedules: list[ScheduleOut]


def _checked_cron(expr: str, timezone: str) -> datetime:
    """The first due time from now, or a 400 naming the field to fix."""
    try:
        return cron.next_due(expr, timezone, datetime.now(UTC))
    except cron.CronError as exc:
        field = "timezone" if str(exc).startswith("time zone") else "cron"
        raise ValidationException(str(exc), extra=[
            {"source": "body", "key": field, "message": str(exc)}]) from None


class SchedulesController(Controller):
    path = "/v1/schedules"
    tags = ["schedules"]

    @post("/", status_code=HTTP_201_CREATED, opt={"scope": "tasks:write"},
          responses=problems(409, 413, 415, 422), summary="Create a recurring schedule")
    async def create(self, request: Request[Any, Any, Any], data: CreateSchedule) -> ScheduleOut:
        services: Services = request.app.state.services
        key = request_key(request)
        fields = task_fields(services, key, data.agent, data.input, data.priority,
                             data.max_attempts, data.timeout_s)
        first = _checked_cron(data.cron, data.timezone)
        row = await services.schedules.create(NewSchedule(
            tenant=key.tenant, name=data.name, cron=data.cron, timezone=data.timezone,
            missed=data.missed, task=fields, created_by=actor(request), next_due_at=first,
            concurrency_key=data.concurrency_key))
        return ScheduleOut.of(row)

    @get("/", opt={"scope": "tasks:read"}, summary="List schedules", responses=problems())
    async def list_schedules(self, request: Request[Any, Any, Any]) -> SchedulesOut:
        services: Services = request.app.state.services
        rows = await services.schedules.list(request_key(request).visible_tenant)
        return SchedulesOut([ScheduleOut.of(row) for row in rows])

    @get("/{name:str}", opt={"scope": "tasks:read"}, summary="Get a schedule",
         responses=problems(404))
    async def get_schedule(self, request: Request[Any, Any, Any], name: PathName) -> ScheduleOut:
        services: Services = request.app.state.services
        return ScheduleOut.of(await services.schedules.get(request_key(request).tenant, name))

    @post("/{name:str}/pause", status_code=200, opt={"scope": "tasks:write"},
          summary="Pause a schedule (no task is created until it is resumed)",
          responses=problems(404))
    async def pause(self, request: Request[Any, Any, Any], name: PathName) -> ScheduleOut:
        services: Services = request.app.state.services
        tenant = request_key(request).tenant
        return ScheduleOut.of(await services.schedules.set_paused(tenant, name, True))

    @post("/{name:str}/resume", status_code=200, opt={"scope": "tasks:write"},
          summary="Resume a schedule from its next due time (the paused ones do not fire)",
          responses=problems(404))
    async def resume(self, request: Request[Any, Any, Any], name: PathName) -> ScheduleOut:
        services: Services = request.app.state.services
        tenant = request_key(request).tenant
        schedule = await services.schedules.get(tenant, name)
        after = cron.next_due(schedule["cron"], schedule["timezone"], datetime.now(UTC))
        return ScheduleOut.of(await services.schedules.set_paused(tenant, name, False, after))

    @delete("/{name:str}", status_code=HTTP_204_NO_CONTENT, opt={"scope": "tasks:write"},
            summary="Delete a schedule (the tasks it created stay)", responses=problems(404))
    async def delete_schedule(self, request: Request[Any, Any, Any], name: PathName) -> None:
        services: Services = request.app.state.services
        await services.schedules.delete(request_key(request).tenant, name)
