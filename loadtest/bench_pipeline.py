"""End-to-end pipeline benchmark: N echo tasks submitted over HTTP, run by one agent process.

    python -m loadtest.bench_pipeline --tasks 5000 --connections 32

By default it starts its own API and agent processes on a database and vhost of its own
(``orchestrator_bench``), so it never mixes with a running orchestrator. Figures come from the
task rows themselves: throughput = tasks / (last finished - first created).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from loadtest.deployment import own_deployment
from loadtest.rawhttp import HttpConnection
from service.settings import Settings

BENCH_NAME = "orchestrator_bench"


@dataclass
class Result:
    tasks: int
    connections: int
    submit_rate: float
    submit_p50_ms: float
    submit_p99_ms: float
    end_to_end_rate: float
    end_to_end_p50_ms: float
    end_to_end_p99_ms: float
    wall_s: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def submit_all(url: str, key: str, count: int, connections: int, agent: str = "echo",
                     fields: dict[str, Any] | None = None,
                     ) -> tuple[list[str], list[float], float]:
    """Submit ``count`` tasks over ``connections`` keep-alive connections (``fields`` are added
    to each body: an ``input`` there replaces the numbered one)."""
    conns = [HttpConnection(url, {"Authorization": f"Bearer {key}"}) for _ in range(connections)]
    numbers = iter(range(count))
    ids: list[str] = []
    latencies: list[float] = []

    async def drive(conn: HttpConnection) -> None:
        for n in numbers:
            body = json.dumps({"agent": agent, "input": {"n": n}, **(fields or {})}).encode()
            started = time.perf_counter()
            status, payload = await conn.request("POST", "/v1/tasks", body)
            latencies.append(time.perf_counter() - started)
            if status != 202:
                raise RuntimeError(f"submit answered {status}: {payload[:200]!r}")
            ids.append(json.loads(payload)["id"])

    started = time.perf_counter()
    await asyncio.gather(*(drive(c) for c in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        await conn.close()
    return ids, latencies, elapsed


def wait_finished(database_url: str, ids: list[str] | None, timeout_s: float,
                  columns: str = "created_at, finished_at, status") -> list[tuple[Any, ...]]:
    """Poll PostgreSQL until every task is final; return the ``columns`` of the tasks ``ids``
    (``None``: of every task).

    The benchmark owns its database, so the poll counts the unfinished tasks of the whole table
    (through the status index: cheap, so the measurement does not load the database it
    measures); ``ids`` are read only once, at the end.
    """
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(database_url) as conn:
        while True:
            pending = conn.execute(
                "SELECT count(*) FROM tasks WHERE status IN ('queued', 'running', 'retrying')"
            ).fetchone()
            if pending and pending[0] == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pending[0] if pending else '?'} tasks unfinished")
            time.sleep(0.2)
        if ids is None:
            return conn.execute(f"SELECT {columns} FROM tasks").fetchall()
        return conn.execute(f"SELECT {columns} FROM tasks WHERE id = ANY(%s::uuid[])",
                            (ids,)).fetchall()


async def measure(url: str, key: str, database_url: str, tasks: int,
                  connections: int) -> Result:
    await submit_all(url, key, min(500, tasks), connections)  # warm-up: pools, JIT-less caches
    started = time.perf_counter()
    ids, latencies, submit_s = await submit_all(url, key, tasks, connections)
    rows = await asyncio.to_thread(wait_finished, database_url, ids, 600)
    wall = time.perf_counter() - started
    failed = [r for r in rows if r[2] != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} tasks did not succeed")
    first = min(r[0] for r in rows)
    last = max(r[1] for r in rows)
    e2e = [(r[1] - r[0]).total_seconds() for r in rows]
    return Result(
        tasks=tasks, connections=connections,
        submit_rate=round(tasks / submit_s, 1),
        submit_p50_ms=round(statistics.median(latencies) * 1000, 2),
        submit_p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
        end_to_end_rate=round(tasks / (last - first).total_seconds(), 1),
        end_to_end_p50_ms=round(statistics.median(e2e) * 1000, 2),
        end_to_end_p99_ms=round(percentile(e2e, 0.99) * 1000, 2),
        wall_s=round(wall, 2),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-workers", type=int, default=2,
                        help="API server processes (the agent is always one process)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    with own_deployment(Settings.from_env(), args.port, agents="echo",
                        api_workers=args.api_workers) as deployment:
        result = asyncio.run(measure(deployment.url, deployment.key, deployment.database_url,
                                     args.tasks, args.connections))
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(f"\n{'metric':<28}{'value':>12}")
        for name, value in asdict(result).items():
            print(f"{name:<28}{value:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
