"""Counts over the task tables for the scrape-time metrics, the doctor and the tenant caps:
tasks by agent and status, unfinished tasks by tenant, how long the oldest due task of each
agent has waited, tasks past their timeout, and what happened recently (events by kind,
integrity failures).

The counts by status come from ``task_counts`` and the deltas its triggers append (migration
0013), never from counting ``tasks``: a few rows to read whatever the size of the table."""

from __future__ import annotations

from service.db.query import Store, execute

_COUNTS = (  # the folded counts and the deltas not folded yet
    "FROM (SELECT tenant, agent, status, n FROM task_counts"
    " UNION ALL SELECT tenant, agent, status, n FROM task_count_deltas) AS c"
)
_BY_STATUS = f"SELECT agent, status, sum(n) AS n {_COUNTS} GROUP BY 1, 2 HAVING sum(n) <> 0"
_ACTIVE_BY_TENANT = (f"SELECT tenant, sum(n) AS n {_COUNTS}"
                     " WHERE status IN ('queued', 'retrying', 'running')"
                     " GROUP BY 1 HAVING sum(n) <> 0")
_FOLD = (  # one folder at a time (the others skip the round): upserts never wait on each other
    "WITH folded AS (DELETE FROM task_count_deltas RETURNING tenant, agent, status, n)"
    " INSERT INTO task_counts (tenant, agent, status, n)"
    " SELECT tenant, agent, status, sum(n) FROM folded GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    " ON CONFLICT (tenant, agent, status) DO UPDATE SET n = task_counts.n + EXCLUDED.n"
)
COUNTS_FOLD_LOCK = 7_326_113_913
"""The advisory lock a fold of the task count deltas holds."""
_DUE = (
    "SELECT agent, count(*) AS n, extract(epoch FROM now() - min(available_at)) AS age_s"
    " FROM tasks WHERE status IN ('queued', 'retrying') AND available_at <= now() GROUP BY agent"
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
PAST_TIMEOUT_GRACE_S = 10.0
"""A running task counts as past its timeout this long after it: recording a timed-out attempt
takes milliseconds, so by then its worker is hung or gone (or the database was down)."""


class TaskStats(Store):
    async def by_status(self) -> dict[tuple[str, str], int]:
        """``(agent, status) -> count``."""
        rows = await self.fetch_all("metrics_tasks_by_status", _BY_STATUS)
        return {(row["agent"], row["status"]): int(row["n"]) for row in rows}

    async def fold_counts(self) -> int:
        """Fold the appended count deltas into ``task_counts`` (skipped while another process
        folds); how many counts changed."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await execute(conn, "task_counts_lock",
                                "SELECT pg_try_advisory_xact_lock(%s) AS got", (COUNTS_FOLD_LOCK,))
            row = await cur.fetchone()
            if row is None or not row["got"]:
                return 0
            return (await execute(conn, "task_counts_fold", _FOLD)).rowcount

    async def active_by_tenant(self) -> dict[str, int]:
        """``tenant -> count`` of its unfinished tasks (queued, retrying or running)."""
        rows = await self.fetch_all("limits_active_by_tenant", _ACTIVE_BY_TENANT)
        return {row["tenant"]: int(row["n"]) for row in rows}

    async def oldest_due_age(self) -> dict[str, float]:
        """``agent -> seconds`` its oldest due task (queued or retrying) has waited."""
        return {agent: age_s for agent, (_, age_s) in (await self.due()).items()}

    async def due(self) -> dict[str, tuple[int, float]]:
        """``agent -> (tasks, seconds)``: its due tasks waiting to start (queued or retrying,
        from the index of live tasks), and how long the oldest has waited."""
        rows = await self.fetch_all("metrics_due", _DUE)
        return {row["agent"]: (int(row["n"]), float(row["age_s"])) for row in rows}

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
