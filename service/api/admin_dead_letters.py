"""``/v1/admin/dead-letters``: the dead-letter record, for admin keys (``orchestrator dlq``).

List and inspect what went dead, replay it (each replay requeues the task with a fresh attempt
budget, names the key that replayed it on the timeline, and stamps the dead letter), and purge
old records. A replay takes at most ``MAX_BATCH`` dead letters per request, oldest first: the
CLI pages through a bulk replay at the rate it is given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

import msgspec
from litestar import Controller, Request, get, post
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK

from service.api.auth import actor
from service.api.openapi import documented, problems
from service.api.state import Services
from service.api.strict_body import require_json_kinds
from service.db.dead_letters import OPEN, ORPHAN_AGENT, DeadLetterStore, Selection, State
from service.errors import DeadLetterNotFound, UnknownAgent

MAX_BATCH = 500
MAX_PAGE = 500
MAX_AGE_S = 100 * 365 * 86400.0
MAX_ID = 2**53 - 1
"""The largest id the API takes: exact as a JSON number everywhere (a bigserial never gets
there)."""
REASON = r"^[A-Za-z0-9_.-]{1,64}$"
Reason = Annotated[str, msgspec.Meta(pattern=REASON)]


class DeadLetterOut(msgspec.Struct):
    id: int
    task_id: str | None
    """``null``: an orphan (no task could be named)."""
    agent: str
    queue: str
    reason: str
    error: str | None
    dead_at: datetime
    replayed_at: datetime | None
    replayed_by: str | None
    task_status: str | None
    """The task's status now (``null`` for an orphan, or a task since deleted)."""

    @classmethod
    def of(cls, row: dict[str, Any]) -> Self:
        return cls(**{f: row[f] for f in cls.__struct_fields__})


class DeadLetterDetail(DeadLetterOut):
    headers: dict[str, Any]
    body: dict[str, str]
    """``{"encoding": "utf-8" | "base64", "data": ...}``"""


class DeadLetterPage(msgspec.Struct):
    items: list[DeadLetterOut]
    next_before: int | None
    """Pass as ``before`` for the next (older) page; ``null`` on the last."""
    open: int
    """Open dead letters matching the filters (all pages)."""


class Replay(msgspec.Struct, forbid_unknown_fields=True):
    """Which dead letters to replay: ``ids`` (any state; each must exist), else every open one
    the filters match (``{}``: all of them)."""

    ids: Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]],
                   msgspec.Meta(min_length=1, max_length=MAX_BATCH),
                   documented(items={"type": "integer", "minimum": 1, "maximum": MAX_ID})
                   ] | None = None
    agent: str | None = None
    reason: Reason | None = None
    since: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    after_id: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    """Only dead letters after this id (a bulk replay's next batch)."""
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_BATCH)] = 100
    dry_run: bool = False


class Replayed(msgspec.Struct):
    id: int
    task_id: str
    agent: str
    reason: str


class Skipped(msgspec.Struct):
    id: int
    task_id: str | None
    why: str


class ReplayOut(msgspec.Struct):
    dry_run: bool
    replayed: list[Replayed]
    """Replayed now (``dry_run``: would be)."""
    skipped: list[Skipped]
    last_id: int | None
    """The newest dead letter this batch looked at: the next batch's ``after_id``."""
    more: bool
    """More matching dead letters after ``last_id``."""


class Purge(msgspec.Struct, forbid_unknown_fields=True):
    older_than_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_AGE_S)]
    dry_run: bool = False


class PurgeOut(msgspec.Struct):
    older_than_s: float
    dry_run: bool
    purged: int
    """Deleted (``dry_run``: would be)."""


def _store(request: Request[Any, Any, Any]) -> DeadLetterStore:
    services: Services = request.app.state.services
    return DeadLetterStore(services.pool)


def _time(text: str | None) -> datetime | None:
    """A query's ISO 8601 time (RFC 3339), strictly: msgspec would take a number too."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationException(
            f"since {text!r} is not an ISO 8601 time such as 2026-12-01T08:00:00Z",
            extra=[{"source": "query", "key": "since", "message": "not a date-time"}]) from None
    if when.tzinfo is None:
        raise ValidationException(
            f"since {text!r} names no time zone: add Z or an offset such as +01:00",
            extra=[{"source": "query", "key": "since", "message": "no time zone"}])
    return when


def _why_not(row: dict[str, Any]) -> str | None:
    if row["task_id"] is None:
        return ("an orphan: no task to requeue (inspect it with orchestrator dlq show;"
                " drop it with orchestrator dlq purge)")
    if row["replayed_at"] is not None:
        return f"already replayed at {row['replayed_at'].isoformat()} by {row['replayed_by']}"
    if row["task_status"] != "dead":
        return f"its task is {row['task_status'] or 'deleted'}, not dead"
    return None


def _known_agent(services: Services, agent: str | None) -> None:
    """An agent filter names a deployed agent type, or the agent of unnamed orphans."""
    if agent is not None and agent not in services.agents and agent != ORPHAN_AGENT:
        raise UnknownAgent(agent, services.agents)


async def replay(services: Services, data: Replay, actor: str) -> ReplayOut:
    """Requeue the tasks of one batch of dead letters, oldest first."""
    _known_agent(services, data.agent)
    selection = Selection(ids=data.ids, agent=data.agent, reason=data.reason, since=data.since,
                          state="all" if data.ids is not None else OPEN, after_id=data.after_id)
    store = DeadLetterStore(services.pool)
    picked = await store.page(selection, max(data.limit, len(data.ids or ())) + 1,
                              newest_first=False)
    more = len(picked) > data.limit
    picked = picked[:data.limit]
    if data.ids is not None:
        missing = set(data.ids) - {row["id"] for row in picked}
        if missing:
            raise DeadLetterNotFound(min(missing))
    skipped: list[Skipped] = []
    wanted = []
    for row in picked:
        why = _why_not(row)
        if why is None:
            wanted.append(row)
        else:
            skipped.append(Skipped(row["id"], row["task_id"], why))
    done_ids = {row["task_id"] for row in wanted}
    if not data.dry_run and wanted:
        tasks = await services.tasks.requeue_many([row["task_id"] for row in wanted], actor,
                                                  dead_letters=[row["id"] for row in wanted])
        done_ids = {task.id for task in tasks}
        services.relay.wake()
        await services.cache.put_task_now(*tasks)
        skipped += [Skipped(row["id"], row["task_id"], "its task stopped being dead meanwhile")
                    for row in wanted if row["task_id"] not in done_ids]
    replayed = [Replayed(row["id"], row["task_id"], row["agent"], row["reason"])
                for row in wanted if row["task_id"] in done_ids]
    return ReplayOut(data.dry_run, replayed, sorted(skipped, key=lambda s: s.id),
                     picked[-1]["id"] if picked else None, more)


class DeadLettersController(Controller):
    path = "/v1/admin/dead-letters"
    tags = ["admin"]
    opt = {"scope": "admin"}

    @get("/", summary="The dead-letter record, newest first", responses=problems(422))
    async def list_dead_letters(
        self, request: Request[Any, Any, Any], agent: str | None = None,
        reason: Annotated[str | None, Parameter(pattern=REASON)] = None,
        since: Annotated[str | None, Parameter(schema_extra={"format": "date-time"})] = None,
        letter_state: Annotated[State, Parameter(query="state")] = "open",
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 50,
        before: Annotated[int | None, Parameter(ge=1, le=MAX_ID)] = None,
    ) -> DeadLetterPage:
        _known_agent(request.app.state.services, agent)
        store = _store(request)
        after = _time(since)
        selection = Selection(agent=agent, reason=reason, since=after, state=letter_state)
        rows = await store.page(selection, limit + 1, before_id=before)
        last = rows[limit - 1]["id"] if len(rows) > limit else None
        open_count = await store.count(Selection(agent=agent, reason=reason, since=after))
        return DeadLetterPage([DeadLetterOut.of(row) for row in rows[:limit]], last, open_count)

    @get("/{dead_letter_id:int}", summary="One dead letter with its headers and body",
         responses=problems(404))
    async def get_dead_letter(
        self, request: Request[Any, Any, Any],
        dead_letter_id: Annotated[int, Parameter(ge=1, le=MAX_ID)],
    ) -> DeadLetterDetail:
        row = await _store(request).get(dead_letter_id)
        if row is None:
            raise DeadLetterNotFound(dead_letter_id)
        return DeadLetterDetail.of(row)

    @post("/replay", status_code=HTTP_200_OK, responses=problems(404, 413, 415, 422),
          summary="Replay dead letters: requeue their tasks with a fresh attempt budget")
    async def replay_dead_letters(self, request: Request[Any, Any, Any],
                                  data: Replay) -> ReplayOut:
        await require_json_kinds(request, Replay)
        return await replay(request.app.state.services, data, actor(request))

    @post("/purge", status_code=HTTP_200_OK, responses=problems(413, 415, 422),
          summary="Delete dead letters recorded longer ago than older_than_s (tasks stay)")
    async def purge_dead_letters(self, request: Request[Any, Any, Any], data: Purge) -> PurgeOut:
        await require_json_kinds(request, Purge)
        store = _store(request)
        if data.dry_run:
            return PurgeOut(data.older_than_s, True, await store.older_than(data.older_than_s))
        return PurgeOut(data.older_than_s, False, await store.purge(data.older_than_s))
