"""Counts over the task table for the scrape-time metrics: tasks by agent and status, and how
long the oldest due task of each agent has waited."""

from __future__ import annotations

from service.db.query import Store

_BY_STATUS = "SELECT agent, status, count(*) AS n FROM tasks GROUP BY agent, status"
_OLDEST_DUE = (
    "SELECT agent, extract(epoch FROM now() - min(available_at)) AS age_s FROM tasks"
    " WHERE status IN ('queued', 'retrying') AND available_at <= now() GROUP BY agent"
)


class TaskStats(Store):
    async def by_status(self) -> dict[tuple[str, str], int]:
        """``(agent, status) -> count``."""
        rows = await self.fetch_all("metrics_tasks_by_status", _BY_STATUS)
        return {(row["agent"], row["status"]): row["n"] for row in rows}

    async def oldest_due_age(self) -> dict[str, float]:
        """``agent -> seconds`` its oldest due task (queued or retrying) has waited."""
        rows = await self.fetch_all("metrics_oldest_due", _OLDEST_DUE)
        return {row["agent"]: float(row["age_s"]) for row in rows}
