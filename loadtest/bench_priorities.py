"""Priority benchmark: urgent tasks submitted behind a backlog, queue wait beside the backlog's.

    python -m loadtest.bench_priorities --backlog 2000 --urgent 20

One agent process with 4 slots runs ``sleep`` tasks of 50 ms (80 tasks/s at most) on a
deployment of its own. The backlog (priority 0) is submitted first and starts draining; once a
tenth of it has started, the urgent tasks are submitted. Two rounds in one run: the control,
where the late tasks carry priority 0 like the backlog, then the real one at priority 9; the
ratio of their queue waits is the figure that compares across machines. Queue wait is a task's
start minus its submission, read from the task rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import psycopg

from loadtest.bench_pipeline import percentile, submit_all, wait_finished
from loadtest.deployment import own_deployment
from service.settings import Settings

SLOTS, TASK_S = 4, 0.05


def _wait_started(database_url: str, count: int) -> None:
    """Poll until ``count`` tasks have started."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        while (row := conn.execute("SELECT count(*) FROM tasks WHERE started_at IS NOT NULL")
               .fetchone()) and row[0] < count:
            time.sleep(0.1)


def _waits(rows: list[tuple[Any, ...]]) -> dict[str, float]:
    waits = [(started - created).total_seconds() for created, started in rows]
    return {"tasks": len(waits), "queue_wait_p50_s": round(percentile(waits, 0.5), 3),
            "queue_wait_p99_s": round(percentile(waits, 0.99), 3)}


async def measure(url: str, key: str, database_url: str, backlog: int, urgent: int,
                  priority: int) -> dict[str, Any]:
    task = {"input": {"seconds": TASK_S}}
    backlog_ids, _, _ = await submit_all(url, key, backlog, 16, "sleep", task)
    await asyncio.to_thread(_wait_started, database_url, backlog // 10)
    late = {**task, "priority": priority}
    urgent_ids, _, _ = await submit_all(url, key, urgent, 4, "sleep", late)
    await asyncio.to_thread(wait_finished, database_url, backlog_ids + urgent_ids, 600)
    with psycopg.connect(database_url) as conn:
        def rows(ids: list[str]) -> list[tuple[Any, ...]]:
            return conn.execute("SELECT created_at, started_at FROM tasks"
                                " WHERE id = ANY(%s::uuid[])", (ids,)).fetchall()
        first_urgent = min(created for created, _ in rows(urgent_ids))
        waiting = [r for r in rows(backlog_ids) if r[1] > first_urgent]
        last_urgent_start = max(started for _, started in rows(urgent_ids))
        overtaken = [r for r in waiting if r[1] < last_urgent_start]
        return {"priority": priority, "urgent": _waits(rows(urgent_ids)),
                "backlog": _waits(rows(backlog_ids)),
                "backlog_waiting_when_urgent_came": _waits(waiting),
                "backlog_started_before_the_last_urgent": len(overtaken)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--urgent", type=int, default=20)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rounds = []
    for priority in (0, 9):  # the control first: the late tasks at the backlog's priority
        with own_deployment(Settings.from_env(), args.port, agents="sleep",
                            extra_env={"ORCH_CONCURRENCY": str(SLOTS)}) as deployment:
            rounds.append(asyncio.run(measure(deployment.url, deployment.key,
                                              deployment.database_url, args.backlog,
                                              args.urgent, priority)))
    control, prioritised = rounds
    result = {"slots": SLOTS, "task_s": TASK_S, "control": control, "prioritised": prioritised,
              "late_wait_p50_ratio": round(prioritised["urgent"]["queue_wait_p50_s"]
                                           / control["urgent"]["queue_wait_p50_s"], 4),
              "wall_s": round(time.perf_counter() - started, 1)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"\n{'round':<12}{'tasks':<34}{'n':>6}{'queue wait p50':>16}{'p99':>10}")
    for round_ in rounds:
        for name in ("urgent", "backlog", "backlog_waiting_when_urgent_came"):
            row = round_[name]
            label = f"late, priority {round_['priority']}" if name == "urgent" else name
            print(f"{'control' if round_ is control else 'priority':<12}{label:<34}"
                  f"{row['tasks']:>6}{row['queue_wait_p50_s']:>15.3f}s"
                  f"{row['queue_wait_p99_s']:>9.3f}s")
    print(f"backlog tasks started between the first late submit and the last late start:"
          f" control {control['backlog_started_before_the_last_urgent']},"
          f" priority {prioritised['backlog_started_before_the_last_urgent']}")
    print(f"late tasks' queue wait p50, priority 9 / priority 0: {result['late_wait_p50_ratio']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
