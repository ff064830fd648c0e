"""Completion callbacks in PostgreSQL: the deliveries due (claimed under a lease, ``SKIP
LOCKED``, so API processes share them and one that dies mid-delivery leaves it to another), how
each attempt ended (on the task's timeline), and each tenant's signing secrets."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.db.query import Store
from service.db.rows import TASK_COLUMNS, jsonb, to_task, transition_sql
from service.domain import Task
from service.signing import new_secret

_CLAIM = (
    "UPDATE tasks SET callback_due_at = now() + make_interval(secs => %(lease_s)s),"
    " callback_attempts = callback_attempts + 1"
    " WHERE id IN (SELECT id FROM tasks WHERE callback_due_at <= now()"
    " ORDER BY callback_due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    f" RETURNING {TASK_COLUMNS}"
)
_BUMP = ", version = version + 1"
"""A new version, so the status cache takes the task's callback state."""
_FENCE = (" WHERE id = %(id)s AND callback_attempts = %(attempt)s"
          " AND callback_due_at IS NOT NULL")
"""Only the claim that holds the delivery records its outcome (not one whose lease ran out)."""
_DELIVERED = transition_sql(
    "UPDATE tasks SET callback_due_at = NULL, callback_state = 'delivered'" + _BUMP + _FENCE,
    "callback_delivered")
_RETRY = transition_sql(
    "UPDATE tasks SET callback_due_at = now() + make_interval(secs => %(delay_s)s)"
    + _BUMP + _FENCE,
    "callback_failed")
_GIVE_UP = transition_sql(
    "UPDATE tasks SET callback_due_at = NULL, callback_state = 'failed'" + _BUMP + _FENCE,
    "callback_failed")
_REFUSED = transition_sql(
    "UPDATE tasks SET callback_due_at = NULL, callback_state = 'refused'" + _BUMP + _FENCE,
    "callback_refused")
_SECRETS = (
    "SELECT tenant, secret, CASE WHEN previous_until > now() THEN previous_secret END"
    " AS previous_secret, CASE WHEN previous_until > now() THEN previous_until END"
    " AS previous_until FROM callback_secrets WHERE tenant = ANY(%(tenants)s)"
)
_CREATE_SECRET = (
    "INSERT INTO callback_secrets (tenant, secret) VALUES (%(tenant)s, %(secret)s)"
    " ON CONFLICT (tenant) DO NOTHING"
)
_ROTATE = (
    "INSERT INTO callback_secrets (tenant, secret) VALUES (%(tenant)s, %(secret)s)"
    " ON CONFLICT (tenant) DO UPDATE SET secret = excluded.secret,"
    " previous_secret = callback_secrets.secret,"
    " previous_until = now() + make_interval(secs => %(overlap_s)s), created_at = now()"
)


@dataclass(frozen=True)
class TenantSecret:
    """The secret a tenant's callbacks are signed with, and the one before it while it still
    signs too (after a rotation)."""

    tenant: str
    secret: str
    previous_secret: str | None = None
    previous_until: datetime | None = None

    @property
    def in_use(self) -> list[str]:
        return [self.secret, *([self.previous_secret] if self.previous_secret else [])]


class CallbackStore(Store):
    """Due callbacks and their outcomes; the tenants' secrets."""

    async def claim_due(self, limit: int, lease_s: float) -> builtins.list[Task]:
        rows = await self.fetch_all("callback_claim", _CLAIM,
                                    {"limit": limit, "lease_s": lease_s})
        return [to_task(row) for row in rows]

    async def delivered(self, task: Task, detail: dict[str, Any]) -> Task | None:
        return await self._record("callback_delivered", _DELIVERED, task, detail)

    async def retry(self, task: Task, delay_s: float, detail: dict[str, Any]) -> Task | None:
        return await self._record("callback_retry", _RETRY, task, detail, delay_s=delay_s)

    async def give_up(self, task: Task, detail: dict[str, Any]) -> Task | None:
        return await self._record("callback_give_up", _GIVE_UP, task, detail)

    async def refused(self, task: Task, detail: dict[str, Any]) -> Task | None:
        return await self._record("callback_refused", _REFUSED, task, detail)

    async def _record(self, operation: str, sql: str, task: Task, detail: dict[str, Any],
                      **params: Any) -> Task | None:
        """The outcome, with its timeline event; the task as it is now (``None``: the claim
        was no longer this one's)."""
        row = await self.fetch_one(operation, sql, {
            "id": task.id, "attempt": task.callback_attempts, "worker_id": None,
            "detail": jsonb(detail), **params})
        return to_task(row) if row else None

    async def secrets(self, tenants: builtins.list[str]) -> dict[str, TenantSecret]:
        """Each tenant's secrets, made for those that have none yet."""
        found = await self._secrets(tenants)
        missing = [t for t in tenants if t not in found]
        for tenant in missing:
            await self.run("callback_secret_create", _CREATE_SECRET,
                           {"tenant": tenant, "secret": new_secret()})
        if missing:
            found |= await self._secrets(missing)
        return found

    async def rotate(self, tenant: str, overlap_s: float) -> TenantSecret:
        """A new secret for ``tenant``; the old one signs too for ``overlap_s``."""
        await self.run("callback_secret_rotate", _ROTATE,
                       {"tenant": tenant, "secret": new_secret(), "overlap_s": overlap_s})
        return (await self._secrets([tenant]))[tenant]

    async def _secrets(self, tenants: builtins.list[str]) -> dict[str, TenantSecret]:
        rows = await self.fetch_all("callback_secrets", _SECRETS, {"tenants": tenants})
        return {row["tenant"]: TenantSecret(**row) for row in rows}
