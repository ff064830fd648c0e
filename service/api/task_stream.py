"""``GET /v1/tasks/{id}/stream``: follow a task live, as Server-Sent Events.

Events: ``timeline`` (each transition, from PostgreSQL), ``progress`` and ``output`` (what the
agent reports, from the task's Redis stream), and last ``end`` with the task in its final state.
Every event's id is a cursor of both sources, ``<timeline event id>_<stream entry id>``: a client
that reconnects with it as ``Last-Event-ID`` gets exactly what came after it.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from litestar import Controller, Request, get
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from catalog import metrics
from service.api.draining import draining
from service.api.openapi import problems
from service.api.schemas import TaskOut
from service.api.state import Services
from service.api.tasks import TaskId, parse_task_id, visible_tenant
from service.domain import TaskEvent, json_text
from service.streams import FIRST_ID, StreamEntry

CURSOR = r"[0-9]{1,18}_[0-9]{1,15}-[0-9]{1,18}"
"""Both parts within what PostgreSQL (bigint) and Redis (64-bit stream ids) can take."""
POLL_S = 0.1
"""How often a follower reads the task's stream of progress and output."""
TIMELINE_POLL_S = 0.5
"""How often a follower reads the timeline (PostgreSQL)."""
TIMELINE_PAGE = 1000
KEEPALIVE_S = 15.0
"""A comment line this often keeps proxies from closing a quiet stream."""
RECONNECT_MS = 1000


@dataclass(frozen=True)
class Cursor:
    """Where a follower is: the last timeline event and the last stream entry it was sent."""

    event_id: int = 0
    entry_id: str = FIRST_ID

    def __str__(self) -> str:
        return f"{self.event_id}_{self.entry_id}"


def parse_cursor(raw: str | None) -> Cursor:
    if not raw:
        return Cursor()
    if not re.fullmatch(CURSOR, raw):
        raise ValidationException(
            f"Last-Event-ID {raw!r} is not an id this stream sent: pass the id of the last"
            " event received unchanged, or none to start from the beginning",
            extra=[{"source": "header", "key": "Last-Event-ID", "message": "not a stream id"}])
    event_id, _, entry_id = raw.partition("_")
    return Cursor(int(event_id), entry_id)


class TaskStreamController(Controller):
    path = "/v1/tasks"
    tags = ["tasks"]

    @get("/{task_id:str}/stream", opt={"scope": "tasks:read"}, responses=problems(404),
         media_type="text/event-stream", summary="Follow a task live (Server-Sent Events)",
         description="timeline, progress and output events, then end with the final task."
         " Reconnect with the last event's id as Last-Event-ID to resume after it.")
    async def stream(
        self, request: Request[Any, Any, Any], task_id: TaskId,
        last_event_id: Annotated[str, Parameter(
            header="Last-Event-ID", required=False,
            description="the id of the last event received: resume after it",
            schema_extra={"pattern": f"^({CURSOR})?$"})] = "",
        live: Annotated[bool, Parameter(
            description="false: only what the stream holds now (ending with end when the"
                        " task is final), then the connection closes")] = True,
    ) -> ServerSentEvent:
        services: Services = request.app.state.services
        task_id = parse_task_id(task_id)
        cursor = parse_cursor(last_event_id)
        task = await services.tasks.get(task_id, visible_tenant(request))  # 404 before it
        return ServerSentEvent(follow(services, task_id, cursor, task.status.is_final, live),
                               headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def follow(services: Services, task_id: str, cursor: Cursor, final: bool = False,
                 live: bool = True) -> AsyncIterator[ServerSentEventMessage]:
    """The task's events after ``cursor`` until it is final (or the server stops); ``final``:
    it was when the stream began, so what is left of its timeline is all there is. Not
    ``live``: until nothing more is there."""
    metrics.STREAM_FOLLOWERS.inc()
    try:
        yield ServerSentEventMessage(data=None, comment="following", retry=RECONNECT_MS)
        timeline_at = quiet_since = 0.0
        while not draining():
            now = time.monotonic()
            entries = await _entries(services, task_id, cursor.entry_id)
            events: list[TaskEvent] = []
            if entries or not live or now - timeline_at >= TIMELINE_POLL_S:
                # read after the stream: every transition before its entries is in
                timeline_at = now
                events = await services.tasks.events_after(task_id, cursor.event_id,
                                                           TIMELINE_PAGE)
            if events:  # and every entry before the transitions read
                entries += await _entries(services, task_id,
                                          entries[-1].id if entries else cursor.entry_id)
            for item in _in_time_order(events, entries):
                cursor = _advanced(cursor, item)
                yield _message(item, cursor)
            if (events and events[-1].status.is_final) or (final and len(events) < TIMELINE_PAGE):
                task = await services.tasks.get(task_id)
                yield ServerSentEventMessage(json_text(TaskOut.of(task)), event="end",
                                             id=str(cursor))
                return
            if not (live or events or entries):
                return
            if events or entries:
                quiet_since = now
            elif now - quiet_since >= KEEPALIVE_S:
                quiet_since = now
                yield ServerSentEventMessage(data=None, comment="keep-alive")
            await anyio.sleep(POLL_S if live else 0)
    finally:
        metrics.STREAM_FOLLOWERS.dec()


async def _entries(services: Services, task_id: str, after: str) -> list[StreamEntry]:
    return await services.streams.read(task_id, after) or []


def _in_time_order(events: list[TaskEvent],
                   entries: list[StreamEntry]) -> list[TaskEvent | StreamEntry]:
    """Both sources merged by when each thing happened; within each the order is never changed
    (the clocks of two servers may disagree)."""
    both: tuple[list[TaskEvent | StreamEntry], ...] = (list(events), list(entries))
    return list(heapq.merge(*both, key=_when))


def _when(item: object) -> float:
    return item.at.timestamp() if isinstance(item, TaskEvent) \
        else item.at_ms / 1000 if isinstance(item, StreamEntry) else 0.0


def _advanced(cursor: Cursor, item: TaskEvent | StreamEntry) -> Cursor:
    if isinstance(item, TaskEvent):
        return Cursor(item.id, cursor.entry_id)
    return Cursor(cursor.event_id, item.id)


def _message(item: TaskEvent | StreamEntry, cursor: Cursor) -> ServerSentEventMessage:
    if isinstance(item, TaskEvent):
        return ServerSentEventMessage(json_text(item), event="timeline", id=str(cursor))
    return ServerSentEventMessage(json_text(item.data), event=item.kind, id=str(cursor))
