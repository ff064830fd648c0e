"""Counts over the task table for the scrape-time metrics: tasks by agent and status, and how
long the oldest due task of each agent has waited."""

from __future__ import annotations

from service.db.query import Store

_BY_STATUS = "SELECT agent, status, count(*) AS n FROM tasks GROUP BY agent, status"
_OLDEST_DUE = (
    "SELECT agent, extract(epoch FROM now() - min(available_at)) AS age_s FROM tasks"
    " WHERE status IN ('queued', 'retrying') AND available_at <= now() GROUP BY agent"
)

_PAST_TIMEOUT = (
    "SELECT agent, count(*) AS n FROM tasks WHERE status = 'running'"
    " AND started_at < now() - make_interval(secs => timeout_s + %s) GROUP BY agent"
)
PAST_TIMEOUT_GRACE_S = 60.0
"""A running task counts as past its timeout this long after it: recording a timed-out attempt
takes milliseconds, so by then its worker is hung or gone."""


class TaskStats(Store):
    async def by_status(self) -> dict[tuple[str, str], int]:
        """``(agent, status) -> count``."""
        rows = await self.fetch_all("metrics_tasks_by_status", _BY_STATUS)
        return {(row["agent"], row["status"]): row["n"] for row in rows}

    async def oldest_due_age(self) -> dict[str, float]:
        """``agent -> seconds`` its oldest due task (queued or retrying) has waited."""
        rows = await self.fetch_all("metrics_oldest_due", _OLDEST_DUE)
        return {row["agent"]: float(row["age_s"]) for row in rows}

    async def running_past_timeout(self) -> dict[str, int]:
        """``agent -> count`` of tasks running over a minute past their timeout."""
        rows = await self.fetch_all("metrics_past_timeout", _PAST_TIMEOUT,
                                    (PAST_TIMEOUT_GRACE_S,))
        return {row["agent"]: int(row["n"]) for row in rows}
