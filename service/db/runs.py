"""Task store, worker side: claim a delivery, then record how the run ended.

Every transition after ``claim`` is fenced by the run id the claim wrote, so a stale or duplicate
delivery can never overwrite the outcome of the run that owns the task.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from service.db.pool import Pool
from service.db.query import Store
from service.db.rows import batch_transition_sql, jsonb, to_task, transition_sql
from service.domain import Task


@dataclass(frozen=True)
class Run:
    """A claimed task: what the agent needs, and the fence token for the outcome."""

    task: Task
    run_id: str
    traceparent: str | None


@dataclass(frozen=True)
class NotClaimed:
    """Why a delivery was not run: ``duplicate``, ``cancelled``, ``exhausted``, or ``early``
    (a task scheduled later: due in ``early_s``)."""

    reason: str
    task: Task | None
    early_s: float = 0.0


_SET_COMMON = "version = tasks.version + 1, updated_at = now()"

# batched statements: one array per input, one element per task
_CLAIM_INPUTS = {"id": "uuid", "run_id": "uuid", "redelivered": "bool"}
_SUCCEED_INPUTS = {"id": "uuid", "run_id": "uuid", "result": "jsonb"}

_CLAIM = batch_transition_sql(
    "status = 'running', run_id = i.run_id, worker_id = %(worker_id)s,"
    " attempts = tasks.attempts + CASE WHEN tasks.run_id = i.run_id THEN 0 ELSE 1 END,"
    f" started_at = now(), {_SET_COMMON}",
    "(tasks.status = 'running' AND tasks.run_id = i.run_id)"  # our own claim, again
    " OR (NOT tasks.cancel_requested AND tasks.attempts < tasks.max_attempts AND"
    " ((tasks.status = 'queued' AND tasks.available_at <= now()) OR tasks.status = 'retrying'"
    " OR (tasks.status = 'running' AND i.redelivered)))",
    "started",
    _CLAIM_INPUTS,
    detail="jsonb_build_object('redelivered', i.redelivered)",
)
_FENCE = " WHERE id = %(id)s AND run_id = %(run_id)s AND status = 'running'"
_SUCCEED = batch_transition_sql(
    f"status = 'succeeded', result = i.result, error = NULL, finished_at = now(), {_SET_COMMON}",
    "tasks.run_id = i.run_id AND tasks.status = 'running'",
    "succeeded",
    _SUCCEED_INPUTS,
)
_RETRY = transition_sql(
    "UPDATE tasks SET status = 'retrying', error = %(error)s, published_at = NULL,"
    f" available_at = now() + make_interval(secs => %(delay_s)s), {_SET_COMMON}" + _FENCE,
    "retry_scheduled",
)
_RETRY_LATER = transition_sql(  # the service asked for it: the attempt is given back
    "UPDATE tasks SET status = 'retrying', error = %(error)s, published_at = NULL,"
    " max_attempts = max_attempts + 1, waits = waits + 1,"
    f" available_at = now() + make_interval(secs => %(delay_s)s), {_SET_COMMON}" + _FENCE,
    "retry_scheduled",
)
WAIT_CAP_S = 10.0
_THROTTLE = transition_sql(  # spaced out the more it waited, jittered so waiters spread
    "UPDATE tasks SET published_at = NULL, waits = waits + 1, available_at = now()"
    " + make_interval(secs => greatest(%(wait_s)s, least(%(cap_s)s,"
    " 0.25 * power(1.5, least(waits, 30)))) * (0.8 + 0.4 * random())),"
    f" {_SET_COMMON} WHERE id = %(id)s AND status IN ('queued', 'retrying')"
    " AND NOT cancel_requested",  # no published_at test: see _HAND_BACK
    "throttled",
)
_USAGE = (  # fenced like an outcome: only the run that holds the task adds to it
    "UPDATE tasks SET tokens_in = tokens_in + %(tokens_in)s,"
    " tokens_out = tokens_out + %(tokens_out)s, cost_usd = cost_usd + %(cost_usd)s"
    " WHERE id = %(id)s AND run_id = %(run_id)s AND status = 'running'"
)
_BURY = transition_sql(
    "UPDATE tasks SET status = 'dead', error = %(error)s, published_at = NULL,"
    f" finished_at = now(), {_SET_COMMON}" + _FENCE,
    "dead_lettered",
)
_CANCELLED = transition_sql(
    f"UPDATE tasks SET status = 'cancelled', finished_at = now(), {_SET_COMMON}"
    " WHERE id = %(id)s AND status IN ('queued', 'retrying', 'running') AND cancel_requested"
    " AND (run_id IS NULL OR run_id = %(run_id)s OR status <> 'running')",
    "cancelled",
)
_LOST = transition_sql(
    "UPDATE tasks SET status = 'dead', error = %(error)s, published_at = NULL,"
    f" finished_at = now(), {_SET_COMMON}"
    " WHERE id = %(id)s AND status = 'running' AND attempts >= max_attempts",
    "dead_lettered",
)
_EARLY = (  # still queued and claimable but for its time: early, or due since the claim
    "SELECT greatest(0, extract(epoch FROM available_at - now())) AS early_s FROM tasks"
    " WHERE id = %(id)s AND status = 'queued' AND NOT cancel_requested"
    " AND attempts < max_attempts"
)
_HAND_BACK = transition_sql(  # the outbox publishes it again, to the delay queue it needs
    f"UPDATE tasks SET published_at = NULL, {_SET_COMMON}"
    " WHERE id = %(id)s AND status IN ('queued', 'retrying')"
    " AND (available_at > now() OR %(anyway)s)",
    "early_delivery",
)
"""No test of ``published_at``: a delivery may come before the relay that published it has
committed, and an ``UPDATE`` judges its ``WHERE`` on the row as its snapshot sees it (still
unpublished): the test would fail, and the delivery be acked with its task left waiting for a
message that is gone. Without it, the update waits for the relay's commit and applies after."""
_DUPLICATE = (
    "INSERT INTO task_events (task_id, kind, status, attempt, worker_id, detail)"
    " SELECT id, 'duplicate_dropped', status, attempts, %(worker_id)s, %(detail)s"
    " FROM tasks WHERE id = %(id)s"
)


def new_run_id() -> str:
    return str(uuid.uuid4())


class RunStore(Store):
    """The transitions an agent worker makes."""

    def __init__(self, pool: Pool, worker_id: str) -> None:
        super().__init__(pool)
        self.worker_id = worker_id
        self._claims = self.batcher("task_claim", _CLAIM, _CLAIM_INPUTS, key="run_id",
                                    worker_id=worker_id)
        self._successes = self.batcher("task_succeed", _SUCCEED, _SUCCEED_INPUTS, key="run_id",
                                       worker_id=worker_id)

    async def claim(self, task_id: str, *, redelivered: bool, run_id: str) -> Run | NotClaimed:
        """Mark the task ``running`` for this worker, or say why this delivery must be dropped.

        A redelivered message of a ``running`` task means the worker that held it is gone: it is
        claimed again (the lost run counts as an attempt) unless its attempts are used up.
        Claiming again with the same ``run_id`` (a retry after a lost reply) is idempotent.
        Concurrent claims share one statement.
        """
        row = await self._claims.submit((task_id, run_id, redelivered))
        if row is not None:
            return Run(to_task(row), run_id, row["traceparent"])
        return await self._explain(task_id, redelivered)

    async def _explain(self, task_id: str, redelivered: bool) -> NotClaimed:
        early = await self.fetch_one("task_early", _EARLY, {"id": task_id})
        if early is not None:
            return NotClaimed("early", None, float(early["early_s"]))
        row = await self._exec("task_cancelled", _CANCELLED, task_id, run_id=None,
                               detail={"at": "delivery"})
        if row is not None:
            return NotClaimed("cancelled", to_task(row))
        if redelivered:
            error = "the worker running the last attempt was lost"
            row = await self._exec("task_lost", _LOST, task_id, error=error,
                                   detail={"error": error})
            if row is not None:
                return NotClaimed("exhausted", to_task(row))
        return NotClaimed("duplicate", None)

    async def throttle(self, task_id: str, limit: str, wait_s: float) -> Task | None:
        """Hand a delivery over a flow limit back to wait, at least ``wait_s`` (``None`` when
        the task changed meanwhile)."""
        row = await self._exec("task_throttle", _THROTTLE, task_id, wait_s=wait_s,
                               cap_s=max(WAIT_CAP_S, wait_s), detail={"limit": limit})
        return to_task(row) if row is not None else None

    async def retry_later(self, run: Run, error: str, delay_s: float) -> Task | None:
        """Retry after ``delay_s`` as the called service asked, giving the attempt back."""
        return await self._outcome("task_retry_later", _RETRY_LATER, run, error=error,
                                   delay_s=delay_s, detail={
                                       "error": error, "delay_s": round(delay_s, 3),
                                       "attempt_given_back": True})

    async def hand_back(self, task_id: str, early_s: float, anyway: bool = False) -> Task | None:
        """Return a delivery that came before its task is due to the outbox (``None`` when
        the task changed meanwhile, or came due: unless ``anyway``)."""
        row = await self._exec("task_hand_back", _HAND_BACK, task_id, anyway=anyway,
                               detail={"early_s": round(early_s, 3)})
        return to_task(row) if row is not None else None

    async def add_usage(self, run: Run, tokens_in: int, tokens_out: int,
                        cost_usd: float) -> None:
        """Add what this run's model calls used to the task (before its outcome is recorded,
        so the outcome's row carries it)."""
        await self.run("task_usage", _USAGE, {
            "id": run.task.id, "run_id": run.run_id, "tokens_in": tokens_in,
            "tokens_out": tokens_out, "cost_usd": cost_usd})

    async def succeed(self, run: Run, result_json: str) -> Task | None:
        """Record the result (JSON text); ``None`` when another run owns the task now.
        Concurrent results share one statement."""
        row = await self._successes.submit((run.task.id, run.run_id, result_json))
        return to_task(row) if row is not None else None

    async def retry(self, run: Run, error: str, delay_s: float) -> Task | None:
        """Schedule another attempt after ``delay_s``; the outbox publishes it to a delay queue."""
        return await self._outcome("task_retry", _RETRY, run, error=error, delay_s=delay_s,
                                   detail={"error": error, "delay_s": round(delay_s, 3)})

    async def bury(self, run: Run, error: str, reason: str) -> Task | None:
        """Mark the task ``dead``; the outbox copies it to the dead-letter queue."""
        return await self._outcome("task_bury", _BURY, run, error=error,
                                   detail={"error": error, "reason": reason})

    async def cancelled(self, run: Run) -> Task | None:
        """Record that a running task stopped because it was asked to."""
        row = await self._exec("task_cancelled", _CANCELLED, run.task.id, run_id=run.run_id,
                               detail={"at": "running"})
        return to_task(row) if row is not None else None

    async def record_duplicate(self, task_id: str, detail: dict[str, Any]) -> None:
        """Append a ``duplicate_dropped`` event to the task's timeline."""
        await self.run("task_duplicate", _DUPLICATE,
                       {"id": task_id, "worker_id": self.worker_id, "detail": jsonb(detail)})

    async def cancel_requested_among(self, task_ids: list[str]) -> list[str]:
        """Which of these tasks an operator asked to cancel."""
        rows = await self.fetch_all(
            "task_cancel_check",
            "SELECT id::text AS id FROM tasks WHERE id = ANY(%s::uuid[]) AND cancel_requested",
            (task_ids,))
        return [row["id"] for row in rows]

    async def _outcome(self, operation: str, sql: str, run: Run, **params: Any) -> Task | None:
        row = await self._exec(operation, sql, run.task.id, run_id=run.run_id, **params)
        return to_task(row) if row is not None else None

    async def _exec(self, operation: str, sql: str, task_id: str, *, detail: dict[str, Any],
                    **params: Any) -> dict[str, Any] | None:
        params.update(id=task_id, worker_id=self.worker_id, detail=jsonb(detail))
        return await self.fetch_one(operation, sql, params)

