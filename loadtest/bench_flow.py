"""Flow-limit benchmark: an agent type's rate held across two worker processes.

    python -m loadtest.bench_flow --rate 120/min --tasks 360

Two agent processes serve ``echo`` limited to ``--rate`` (``ORCH_AGENT_LIMITS``) on a
deployment of its own; all tasks are submitted at once, so every worker always has work
waiting. The achieved rate is read from the task rows (starts after the first burst, over the
time they took) and reported against the limit: the ratio should be 1 within 10%.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import psycopg

from loadtest.bench_pipeline import submit_all, wait_finished
from loadtest.deployment import own_deployment
from service.ratelimit import parse_rate
from service.settings import Settings


def measure(database_url: str, ids: list[str], burst: int) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT started_at, status, waits FROM tasks"
                            " WHERE id = ANY(%s::uuid[]) ORDER BY started_at", (ids,)).fetchall()
    starts = [r[0] for r in rows]
    after_burst = starts[burst:]
    span_s = (after_burst[-1] - after_burst[0]).total_seconds()
    return {"tasks": len(rows), "failed": sum(1 for r in rows if r[1] != "succeeded"),
            "throttled_waits": sum(int(r[2]) for r in rows),
            "span_s": round(span_s, 1),
            "achieved_per_min": round((len(after_burst) - 1) / span_s * 60, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="120/min")
    parser.add_argument("--tasks", type=int, default=360)
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    rate = parse_rate(args.rate)
    burst = max(1, round(rate.per_second))
    with own_deployment(Settings.from_env(), args.port, agents="echo", agent_processes=2,
                        extra_env={"ORCH_AGENT_LIMITS": f"echo:rate={args.rate}"}) as deployment:
        ids, _, _ = asyncio.run(submit_all(deployment.url, deployment.key, args.tasks, 8))
        timeout_s = args.tasks / rate.per_second * 2 + 60
        wait_finished(deployment.database_url, ids, timeout_s)
        result = measure(deployment.database_url, ids, burst)
    result["limit_per_min"] = round(rate.per_second * 60, 2)
    result["ratio_to_limit"] = round(result["achieved_per_min"] / result["limit_per_min"], 3)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, value in result.items():
            print(f"{name:<20}{value:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
