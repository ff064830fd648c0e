"""Counts over the task tables for the scrape-time metrics, the doctor and the tenant caps:
tasks by agent and status, unfinished tasks by tenant, how long the oldest due task of each
agent has waited, tasks past their timeout, and what happened recently (events by kind,
integrity failures)."""

from __future__ import annotations

from service.db.query import Store

_BY_STATUS = "SELECT agent, status, count(*) AS n FROM tasks GROUP BY agent, status"
_OLDEST_DUE = (
    "SELECT agent, extract(epoch FROM now() - min(available_at)) AS age_s FROM tasks"
    " WHERE status IN ('queued', 'retrying') AND available_at <= now() GROUP BY agent"
)

PAST_TIMEOUT = ("status = 'running'"
                " AND started_at < now() - make_interval(secs => timeout_s + %(grace_s)s)")
"""The condition of a task running past its timeout (``grace_s``: ``PAST_TIMEOUT_GRACE_S``)."""
_PAST_TIMEOUT = f"SELECT agent, count(*) AS n FROM tasks WHERE {PAST_TIMEOUT} GROUP BY agent"
_FINISHED = (
    "SELECT agent, status, count(*) AS n FROM tasks"
    " WHERE finished_at > now() - make_interval(secs => %(window_s)s) GROUP BY agent, status"
)
_RECENT_EVENTS = (
    "WITH e AS (SELECT task_id, kind, at FROM task_events ORDER BY id DESC LIMIT %(limit)s)"
    " SELECT t.agent, e.kind, count(*) AS n FROM e JOIN tasks t ON t.id = e.task_id"
    " WHERE e.at > now() - make_interval(secs => %(window_s)s) GROUP BY 1, 2"
)
_INTEGRITY = (
    "SELECT count(*) AS n FROM tasks WHERE status = 'dead' AND error LIKE '%%checksum%%'"
    " AND finished_at > now() - make_interval(secs => %(window_s)s)"
)
_ACTIVE_BY_TENANT = (
    "SELECT tenant, count(*) AS n FROM tasks WHERE status IN ('queued', 'retrying', 'running')"
    " GROUP BY tenant"
)
PAST_TIMEOUT_GRACE_S = 10.0
"""A running task counts as past its timeout this long after it: recording a timed-out attempt
takes milliseconds, so by then its worker is hung or gone (or the database was down)."""


class TaskStats(Store):
    async def by_status(self) -> dict[tuple[str, str], int]:
        """``(agent, status) -> count``."""
        rows = await self.fetch_all("metrics_tasks_by_status", _BY_STATUS)
        return {(row["agent"], row["status"]): row["n"] for row in rows}

    async def active_by_tenant(self) -> dict[str, int]:
        """``tenant -> count`` of its unfinished tasks (queued, retrying or running)."""
        rows = await self.fetch_all("limits_active_by_tenant", _ACTIVE_BY_TENANT)
        return {row["tenant"]: int(row["n"]) for row in rows}

    async def oldest_due_age(self) -> dict[str, float]:
        """``agent -> seconds`` its oldest due task (queued or retrying) has waited."""
        rows = await self.fetch_all("metrics_oldest_due", _OLDEST_DUE)
        return {row["agent"]: float(row["age_s"]) for row in rows}

    async def running_past_timeout(self) -> dict[str, int]:
        """``agent -> count`` of tasks running ``PAST_TIMEOUT_GRACE_S`` past their timeout."""
        rows = await self.fetch_all("metrics_past_timeout", _PAST_TIMEOUT,
                                    {"grace_s": PAST_TIMEOUT_GRACE_S})
        return {row["agent"]: int(row["n"]) for row in rows}

    async def finished(self, window_s: float) -> dict[str, dict[str, int]]:
        """``agent -> final status -> count`` of the tasks that finished in the last
        ``window_s`` (an index on ``finished_at`` keeps it to those rows)."""
        rows = await self.fetch_all("stats_finished", _FINISHED, {"window_s": window_s})
        out: dict[str, dict[str, int]] = {}
        for row in rows:
            out.setdefault(row["agent"], {})[row["status"]] = int(row["n"])
        return out

    async def recent_events(self, window_s: float,
                            scan_limit: int = 100_000) -> dict[str, dict[str, int]]:
        """``agent -> event kind -> count`` over the last ``window_s`` (reading at most the
        newest ``scan_limit`` events, so the cost does not grow with the table)."""
        rows = await self.fetch_all("diagnose_recent_events", _RECENT_EVENTS,
                                    {"window_s": window_s, "limit": scan_limit})
        out: dict[str, dict[str, int]] = {}
        for row in rows:
            out.setdefault(row["agent"], {})[row["kind"]] = int(row["n"])
        return out

    async def integrity_failures(self, window_s: float) -> int:
        """Tasks that went dead in the last ``window_s`` because their input changed."""
        row = await self.fetch_one("diagnose_integrity", _INTEGRITY, {"window_s": window_s})
        return int(row["n"]) if row else 0
