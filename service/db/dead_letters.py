"""The dead-letter record: what reached the dead-letter exchange, kept in PostgreSQL.

A dead letter names its task (which is ``dead``; a replay requeues the task and stamps the row)
or is an orphan (no task could be named: its headers and body are what is left to inspect).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from service.db.query import Store
from service.db.rows import jsonb

ORPHAN_AGENT = "unknown"
"""The agent of an orphan whose source queue names none."""
State = Literal["open", "replayed", "all"]
OPEN: State = "open"
REPLAYED: State = "replayed"

_RECORD = (
    "WITH t AS (SELECT id, agent, error, status FROM tasks WHERE id = %(task_id)s::uuid),"
    " ins AS (INSERT INTO dead_letters (task_id, agent, queue, reason, error, headers, body,"
    " fingerprint) SELECT t.id, t.agent, %(queue)s, coalesce(%(reason)s, (SELECT"
    " e.detail->>'reason' FROM task_events e WHERE e.task_id = t.id AND e.kind = 'dead_lettered'"
    " ORDER BY e.id DESC LIMIT 1), 'dead'), t.error, %(headers)s, %(body)s, %(fingerprint)s"
    " FROM t WHERE t.status = 'dead'"
    " ON CONFLICT (task_id) WHERE replayed_at IS NULL AND task_id IS NOT NULL DO NOTHING"
    " RETURNING id, agent, reason)"
    " SELECT (SELECT status FROM t) AS task_status, ins.id, ins.agent, ins.reason"
    " FROM (SELECT 1) AS one LEFT JOIN ins ON true"
)
_RECORD_ORPHAN = (
    "INSERT INTO dead_letters (agent, queue, reason, headers, body, fingerprint)"
    " VALUES (%(agent)s, %(queue)s, %(reason)s, %(headers)s, %(body)s, %(fingerprint)s)"
    " ON CONFLICT (fingerprint) WHERE task_id IS NULL DO NOTHING RETURNING id, agent, reason"
)
_LISTED = ("d.id, d.task_id::text AS task_id, d.agent, d.queue, d.reason, d.error, d.dead_at,"
           " d.replayed_at, d.replayed_by, t.status AS task_status")
_PURGE = ("WITH doomed AS (SELECT id FROM dead_letters WHERE dead_at < now()"
          " - make_interval(secs => %(age_s)s) ORDER BY dead_at LIMIT %(batch)s"
          " FOR UPDATE SKIP LOCKED) DELETE FROM dead_letters USING doomed"
          " WHERE dead_letters.id = doomed.id")


@dataclass(frozen=True)
class Recorded:
    """What recording one dead letter did: ``recorded``, ``orphan`` (recorded without a
    task), ``duplicate`` (already recorded: a redelivered copy) or ``stale`` (its task is no
    longer dead: replayed, or a late copy of a finished task)."""

    outcome: str
    id: int | None = None
    agent: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Selection:
    """Which dead letters a list, replay or count means."""

    ids: list[int] | None = None
    agent: str | None = None
    reason: str | None = None
    since: datetime | None = None
    state: State = OPEN
    after_id: int = 0

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if self.ids is not None:
            clauses.append("d.id = ANY(%(ids)s::bigint[])")
            params["ids"] = self.ids
        for column in ("agent", "reason"):
            if (value := getattr(self, column)) is not None:
                clauses.append(f"d.{column} = %({column})s")
                params[column] = value
        if self.after_id:
            clauses.append("d.id > %(after_id)s")
            params["after_id"] = self.after_id
        if self.since is not None:
            clauses.append("d.dead_at >= %(since)s")
            params["since"] = self.since
        if self.state == OPEN:
            clauses.append("d.replayed_at IS NULL")
        elif self.state == REPLAYED:
            clauses.append("d.replayed_at IS NOT NULL")
        return " AND ".join(clauses) or "true", params


def jsonable(value: Any) -> Any:
    """AMQP header values as JSON: bytes as text, times as ISO 8601, tables and arrays
    recursively."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")  # PostgreSQL's jsonb holds no NUL
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def body_text(body: bytes) -> dict[str, str]:
    """A body to show: its text when it is UTF-8, else base64."""
    try:
        return {"encoding": "utf-8", "data": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "data": base64.b64encode(body).decode()}


class DeadLetterStore(Store):
    async def record(self, task_id: str | None, *, queue: str, reason: str | None,
                     headers: dict[str, Any], body: bytes, agent_hint: str) -> Recorded:
        """Record one dead letter against ``task_id``, or as an orphan when that names no
        task. ``reason``: the broker's (``None``: the task's own, from its timeline)."""
        clean = jsonable(headers)
        fingerprint = hashlib.sha256(
            body + json.dumps(clean, sort_keys=True).encode()).hexdigest()
        params = {"task_id": task_id, "queue": queue, "reason": reason,
                  "headers": jsonb(clean), "body": body, "fingerprint": fingerprint}
        if task_id is not None:
            row = await self.fetch_one("dead_letter_record", _RECORD, params)
            assert row is not None  # the statement always answers one row
            if row["task_status"] is not None:
                if row["id"] is not None:
                    return Recorded("recorded", row["id"], row["agent"], row["reason"])
                return Recorded("duplicate" if row["task_status"] == "dead" else "stale")
        row = await self.fetch_one("dead_letter_orphan", _RECORD_ORPHAN, {
            **params, "agent": agent_hint or ORPHAN_AGENT, "reason": reason or "unknown"})
        if row is None:
            return Recorded("duplicate")
        return Recorded("orphan", row["id"], row["agent"], row["reason"])

    async def page(self, selection: Selection, limit: int, *, newest_first: bool = True,
                   before_id: int | None = None) -> list[dict[str, Any]]:
        """Newest first (a list; ``before_id``: the page after that id), or oldest first (what
        a replay takes next; orphans included, the caller says why it skips them)."""
        where, params = selection.where()
        if before_id is not None:
            where += " AND d.id < %(before_id)s"
            params["before_id"] = before_id
        return await self.fetch_all(
            "dead_letter_list",
            f"SELECT {_LISTED} FROM dead_letters d LEFT JOIN tasks t ON t.id = d.task_id"
            f" WHERE {where} ORDER BY d.id {'DESC' if newest_first else 'ASC'}"
            " LIMIT %(limit)s", {**params, "limit": limit})

    async def get(self, dead_letter_id: int) -> dict[str, Any] | None:
        """One dead letter with its headers and body."""
        row = await self.fetch_one(
            "dead_letter_get",
            f"SELECT {_LISTED}, d.headers, d.body FROM dead_letters d"
            " LEFT JOIN tasks t ON t.id = d.task_id WHERE d.id = %(id)s", {"id": dead_letter_id})
        if row is not None:
            row["body"] = body_text(bytes(row["body"]))
        return row

    async def count(self, selection: Selection) -> int:
        where, params = selection.where()
        row = await self.fetch_one("dead_letter_count",
                                   f"SELECT count(*) AS n FROM dead_letters d WHERE {where}",
                                   params)
        return int(row["n"]) if row else 0

    async def open_by_agent(self) -> dict[str, int]:
        """Open (not replayed) dead letters per agent type: the scrape-time gauge."""
        rows = await self.fetch_all(
            "dead_letter_open", "SELECT agent, count(*) AS n FROM dead_letters"
            " WHERE replayed_at IS NULL GROUP BY agent")
        return {row["agent"]: int(row["n"]) for row in rows}

    async def older_than(self, age_s: float) -> int:
        row = await self.fetch_one(
            "dead_letter_due", "SELECT count(*) AS n FROM dead_letters"
            " WHERE dead_at < now() - make_interval(secs => %(age_s)s)", {"age_s": age_s})
        return int(row["n"]) if row else 0

    async def purge(self, age_s: float, batch: int = 1000) -> int:
        """Delete the dead letters recorded more than ``age_s`` ago (open or replayed; their
        tasks stay), ``batch`` at a time; how many went."""
        return await self.delete_in_batches("dead_letter_purge", _PURGE, {"age_s": age_s},
                                            batch)
