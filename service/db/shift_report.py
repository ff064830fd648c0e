"""What the shift report reads from PostgreSQL over a window: per agent what was submitted and
what finished (with run and end-to-end times), the peak rates, and dead letters by reason.
Every query reads only the window's rows (indexes on ``created_at``, ``finished_at``,
``dead_at``)."""

from __future__ import annotations

from typing import Any

from service.db.query import Store

_SINCE = "now() - make_interval(secs => %(window_s)s)"
_FINISHED = (
    "SELECT agent, count(*) FILTER (WHERE status = 'succeeded') AS succeeded,"
    " count(*) FILTER (WHERE status = 'dead') AS dead,"
    " count(*) FILTER (WHERE status = 'cancelled') AS cancelled,"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))"
    "   FILTER (WHERE status = 'succeeded' AND started_at IS NOT NULL) AS run_p50_s,"
    " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))"
    "   FILTER (WHERE status = 'succeeded' AND started_at IS NOT NULL) AS run_p95_s,"
    " percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))"
    "   FILTER (WHERE status = 'succeeded') AS end_to_end_p95_s"
    f" FROM tasks WHERE finished_at >= {_SINCE} GROUP BY agent"
)
_SUBMITTED = f"SELECT agent, count(*) AS n FROM tasks WHERE created_at >= {_SINCE} GROUP BY agent"
_PEAK = (
    "SELECT coalesce(max(n), 0) / 60.0 AS per_s FROM (SELECT date_trunc('minute', {column}),"
    " count(*) AS n FROM tasks WHERE {column} >= " + _SINCE + " GROUP BY 1) AS minutes"
)
_DEAD_LETTERS = (
    "SELECT agent, reason, count(*) AS n, count(*) FILTER (WHERE replayed_at IS NOT NULL)"
    f" AS replayed FROM dead_letters WHERE dead_at >= {_SINCE} GROUP BY agent, reason"
    " ORDER BY n DESC, agent, reason"
)


class ShiftReportStore(Store):
    async def agents(self, window_s: float) -> dict[str, dict[str, Any]]:
        """``agent -> submitted, succeeded, dead, cancelled, run_p50_s, run_p95_s,
        end_to_end_p95_s`` over the last ``window_s``."""
        out: dict[str, dict[str, Any]] = {}
        params = {"window_s": window_s}
        for row in await self.fetch_all("report_submitted", _SUBMITTED, params):
            out.setdefault(row["agent"], {})["submitted"] = int(row["n"])
        for row in await self.fetch_all("report_finished", _FINISHED, params):
            agent = row.pop("agent")
            out.setdefault(agent, {}).update(row)
        return out

    async def peak_per_s(self, window_s: float, column: str) -> float:
        """The busiest minute's rate of ``column`` (``created_at``: submissions,
        ``finished_at``: completions)."""
        assert column in ("created_at", "finished_at")
        row = await self.fetch_one(f"report_peak_{column}", _PEAK.format(column=column),
                                   {"window_s": window_s})
        return float(row["per_s"]) if row else 0.0

    async def dead_letters(self, window_s: float) -> list[dict[str, Any]]:
        return await self.fetch_all("report_dead_letters", _DEAD_LETTERS,
                                    {"window_s": window_s})
