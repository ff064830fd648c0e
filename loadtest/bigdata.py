"""Flat cost as the data grows: the same measurements on an empty database and on one seeded with
millions of finished tasks and their timelines (``generate_series`` into a database of its own,
kept between runs: seeding 10 million tasks takes minutes).

Each side runs the API and one echo agent and measures: ``/metrics`` scrape p50/p99 (the state
sampler re-reading the database every ``--metrics-cache-s``), the sampler's database time as a
share of one core (its statements' time per second of wall time), ``POST /v1/tasks`` p99 at a
fixed rate, and end-to-end tasks/s.

    python -m loadtest.bigdata --tasks-rows 10000000 --events-per-task 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from typing import Any

import httpx
import psycopg

from loadtest import bench_pipeline
from loadtest.baseline import submit_latency_at
from loadtest.deployment import BENCH_NAME, bench_settings, own_deployment
from service.db.pool import ensure_database
from service.settings import Settings

BIG_NAME = f"{BENCH_NAME}_big"
SAMPLER_OPERATIONS = re.compile(
    r"^(metrics_|outbox_backlog|worker_|agent_types|backup_last_verified|dead_letter_open"
    r"|schedule_overdue)")
"""The statements the scrape-time sampler runs (``service/gauges/sampler.py``)."""
_DB_SECONDS = re.compile(
    r'^orchestrator_db_query_duration_seconds_sum\{operation="([^"]+)"\} (\S+)$', re.M)
_SEED_CHUNK = (  # finished tasks spread over 10 days (inside every retention), 3 agents,
    # 50 tenants, 96% succeeded, 3% dead, 1% cancelled; each with its timeline
    "WITH t AS (INSERT INTO tasks (id, agent, tenant, input, status, max_attempts, timeout_s,"
    " input_checksum, published_at, created_at, started_at, finished_at, attempts)"
    " SELECT gen_random_uuid(), (ARRAY['echo', 'summarize', 'llm'])[1 + g %% 3],"
    " 'tenant-' || (g %% 50), jsonb_build_object('n', g),"
    " CASE WHEN g %% 100 < 96 THEN 'succeeded' WHEN g %% 100 < 99 THEN 'dead'"
    " ELSE 'cancelled' END, 3, 60, 'seeded', c, c, c, c + interval '1 second', 1"
    " FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g,"
    " LATERAL (SELECT now() - interval '10 days' * (g::float8 / %(total)s::bigint)) AS at(c)"
    " RETURNING id, status, created_at)"
    " INSERT INTO task_events (task_id, at, kind, status, attempt)"
    " SELECT id, created_at + k * interval '100 ms',"
    " (ARRAY['submitted', 'published', 'started', 'finished', 'note'])[1 + k],"
    " status, 1 FROM t, generate_series(0, %(events)s::int - 1) AS k"
)


def seed(database_url: str, rows: int, events_per_task: int, chunk: int = 500_000) -> float:
    """Fill ``tasks`` up to ``rows`` rows (the timelines with them); seconds it took."""
    started = time.perf_counter()
    with psycopg.connect(database_url, autocommit=True) as conn:
        have_row = conn.execute("SELECT count(*) FROM tasks").fetchone()
        have = int(have_row[0]) if have_row else 0
        for first in range(have + 1, rows + 1, chunk):
            last = min(rows, first + chunk - 1)
            conn.execute(_SEED_CHUNK, {"first": first, "last": last, "total": rows,
                                       "events": events_per_task})
            print(f"seeded {last:,} of {rows:,} tasks", file=sys.stderr, flush=True)
        if have < rows:
            conn.execute("VACUUM ANALYZE tasks")
            conn.execute("VACUUM ANALYZE task_events")
    return time.perf_counter() - started


def sampler_db_seconds(metrics_text: str) -> float:
    return sum(float(value) for operation, value in _DB_SECONDS.findall(metrics_text)
               if SAMPLER_OPERATIONS.match(operation))


async def scrapes(url: str, seconds: float, interval_s: float) -> dict[str, float]:
    """Scrape ``/metrics`` every ``interval_s`` for ``seconds``: latency p50/p99 and the
    sampler's database time per wall second."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        before = sampler_db_seconds((await client.get("/metrics")).text)
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            sent = time.perf_counter()
            response = await client.get("/metrics")
            response.raise_for_status()
            latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(max(0.0, interval_s - (time.perf_counter() - sent)))
        wall = time.perf_counter() - started
        after = sampler_db_seconds(response.text)
    latencies.sort()
    return {"scrapes": len(latencies),
            "scrape_p50_ms": round(statistics.median(latencies) * 1000, 1),
            "scrape_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1),
            "sampler_db_core_share": round((after - before) / wall, 4)}


def measure_side(database: str, keep_tasks: bool, args: argparse.Namespace) -> dict[str, Any]:
    env = {"ORCH_METRICS_CACHE_S": str(args.metrics_cache_s)}
    with own_deployment(Settings.from_env(), args.port, agents="echo", extra_env=env,
                        database=database, keep_tasks=keep_tasks) as deployment:
        with psycopg.connect(deployment.database_url, autocommit=True) as conn:
            rows = conn.execute("SELECT (SELECT count(*) FROM tasks),"
                                " (SELECT count(*) FROM task_events)").fetchone()
        scraped = asyncio.run(scrapes(deployment.url, args.scrape_s, args.scrape_interval_s))
        submit = asyncio.run(submit_latency_at(deployment.url, deployment.key,
                                               args.submit_rate, args.submit_s))
        pipeline = asyncio.run(bench_pipeline.measure(
            deployment.url, deployment.key, deployment.database_url, args.tasks, 32))
    return {"tasks_rows": rows[0] if rows else 0, "event_rows": rows[1] if rows else 0,
            **scraped, "submit_rate": submit["achieved"], "submit_p99_ms": submit["p99_ms"],
            "end_to_end_rate": pipeline.end_to_end_rate}


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks-rows", type=int, default=10_000_000,
                        help="rows in tasks on the big side")
    parser.add_argument("--events-per-task", type=int, default=4,
                        help="timeline rows per seeded task")
    parser.add_argument("--tasks", type=int, default=3000,
                        help="tasks of the end-to-end run on each side")
    parser.add_argument("--port", type=int, default=8769)
    parser.add_argument("--metrics-cache-s", type=float, default=2.0,
                        help="ORCH_METRICS_CACHE_S: how often the sampler re-reads")
    parser.add_argument("--scrape-s", type=float, default=60.0, help="seconds of scraping")
    parser.add_argument("--scrape-interval-s", type=float, default=0.5)
    parser.add_argument("--submit-rate", type=float, default=100.0,
                        help="tasks/s of the POST latency run")
    parser.add_argument("--submit-s", type=float, default=20.0)
    parser.add_argument("--database", default=BIG_NAME,
                        help="the big side's database (kept: a later run seeds only the rest)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="measurements of each side, interleaved (the medians are shown)")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args(argv)

    big = bench_settings(Settings.from_env(), args.database)
    asyncio.run(ensure_database(big.database))
    with own_deployment(Settings.from_env(), args.port, database=args.database,
                        keep_tasks=True):
        pass  # the big database created and migrated
    seeded_s = seed(big.database.url, args.tasks_rows, args.events_per_task)
    rounds: dict[str, list[dict[str, Any]]] = {"empty": [], "big": []}
    for _ in range(args.rounds):  # interleaved: a noisy minute hurts both sides alike
        rounds["empty"].append(measure_side(BENCH_NAME, False, args))
        rounds["big"].append(measure_side(args.database, True, args))
    empty, full = (medians(rounds[side]) for side in ("empty", "big"))
    print(json.dumps({"seed_s": round(seeded_s, 1), "empty": empty, "big": full,
                      "rounds": rounds}, indent=2))
    if args.json:
        return 0
    print(f"\n{'measure (median of ' + str(args.rounds) + ' rounds)':<34}"
          f"{'empty':>14}{'big':>14}{'ratio':>10}")
    for name in ("tasks_rows", "event_rows", "scrape_p50_ms", "scrape_p99_ms",
                 "sampler_db_core_share", "submit_p99_ms", "end_to_end_rate"):
        ratio = full[name] / empty[name] if empty[name] else float("nan")
        print(f"{name:<34}{empty[name]:>14}{full[name]:>14}{ratio:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
