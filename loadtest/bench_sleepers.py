"""Agents wait on models, so concurrency is the throughput: tasks that sleep (a model call's
stand-in) through ONE agent process, measured for tasks/s, tasks in flight, the process's RSS
and its event-loop lag; beside it Celery prefork x2 on the same sleeping task.

The tasks are submitted at a constant rate (``--rate``, open model). The tasks/s is the steady
completion rate: tasks finished per second between the first and the last finish of the middle
80% of the tasks (the ramp-up and the drain left out). In flight is the most tasks running at
once, from their start and finish times in PostgreSQL. The RSS peak and the lag come from the
agent's own ``/metrics`` (``process_resident_memory_bytes``, ``orchestrator_event_loop_lag_seconds``
measured every 0.1 s), scraped four times a second.

    python -m loadtest.bench_sleepers --tasks 12000 --rate 280 --sleep-s 2 --concurrency 600
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any

import httpx

from loadtest.bench_pipeline import percentile, wait_finished
from loadtest.deployment import own_deployment
from loadtest.generator import LoadConfig, run_load
from loadtest.peers.systems import celery_prefork_sleepers
from loadtest.profiles import Constant
from loadtest.workload import Workload
from service.ports import free_port
from service.settings import Settings

TARGETS = {"rate": 250.0, "in_flight": 500, "rss_mib": 300.0, "lag_p99_ms": 50.0}
_RSS = re.compile(r"^process_resident_memory_bytes (\S+)$", re.M)
_LAG = re.compile(r"^orchestrator_event_loop_lag_seconds (\S+)$", re.M)


async def sample_agent(url: str, stop: asyncio.Event) -> tuple[list[float], list[float]]:
    """RSS (MiB) and loop-lag (s) samples of the agent until ``stop``."""
    rss: list[float] = []
    lag: list[float] = []
    async with httpx.AsyncClient(timeout=5, headers={"Accept-Encoding": "identity"}) as client:
        while not stop.is_set():
            try:
                text = (await client.get(url)).text
            except httpx.HTTPError:
                text = ""
            if found := _RSS.search(text):
                rss.append(float(found.group(1)) / 2**20)
            if found := _LAG.search(text):
                lag.append(float(found.group(1)))
            await asyncio.sleep(0.25)
    return rss, lag


def most_in_flight(rows: list[tuple[Any, ...]]) -> int:
    edges = sorted([(r[0], 1) for r in rows] + [(r[1], -1) for r in rows])  # ends first
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def steady_rate(rows: list[tuple[Any, ...]]) -> float:
    finishes = sorted(r[1] for r in rows)
    low, high = finishes[len(finishes) // 10], finishes[(9 * len(finishes)) // 10]
    span = (high - low).total_seconds()
    return round((len(finishes) * 0.8) / span, 1) if span > 0 else 0.0


def orchestrator(tasks: int, sleep_s: float, concurrency: int, rate: float) -> dict[str, Any]:
    metrics_port = free_port()
    env = {"ORCH_CONCURRENCY": str(concurrency), "ORCH_AGENT_METRICS_PORT": str(metrics_port),
           "ORCH_PROBE_INTERVAL_S": "0.1"}
    with own_deployment(Settings.from_env(), free_port(), agents="sleep", extra_env=env,
                        api_workers=2) as deployment:
        async def run() -> tuple[list[float], list[float], list[tuple[Any, ...]]]:
            stop = asyncio.Event()
            sampler = asyncio.create_task(
                sample_agent(f"http://127.0.0.1:{metrics_port}/metrics", stop))
            # submitted at a constant rate (open model), as a steady stream of model calls
            # arrives: a backlog submitted at once starts (and ends) its tasks in herds
            await run_load(LoadConfig(
                url=deployment.url, api_key=deployment.key, profile=Constant(rate),
                workload=Workload({"sleep": 1.0}, inputs={"sleep": {"seconds": sleep_s}}),
                queue_wait_target_s=None, duration_s=None, max_requests=tasks,
                track_fraction=0.0, progress=False))
            rows = await asyncio.to_thread(wait_finished, deployment.database_url, None,
                                           60 + 10 * tasks * sleep_s / concurrency,
                                           "started_at, finished_at, status")
            stop.set()
            rss, lag = await sampler
            return rss, lag, rows

        rss, lag, rows = asyncio.run(run())
    failed = sum(1 for r in rows if r[2] != "succeeded")
    lag.sort()
    return {"system": "orchestrator, 1 agent process", "tasks": len(rows), "failed": failed,
            "concurrency": concurrency, "submitted_rate": rate, "rate": steady_rate(rows),
            "in_flight": most_in_flight(rows),
            "rss_mib": round(max(rss), 1) if rss else None,
            "lag_p50_ms": round(percentile(lag, 0.5) * 1000, 1) if lag else None,
            "lag_p99_ms": round(percentile(lag, 0.99) * 1000, 1) if lag else None,
            "lag_max_ms": round(lag[-1] * 1000, 1) if lag else None,
            "lag_samples": len(lag)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6000)
    parser.add_argument("--sleep-s", type=float, default=2.0, help="how long each task sleeps")
    parser.add_argument("--rate", type=float, default=280.0,
                        help="tasks/s submitted, constant (at 2 s a task, 560 in flight)")
    parser.add_argument("--concurrency", type=int, default=600,
                        help="ORCH_CONCURRENCY of the one agent process")
    parser.add_argument("--celery-tasks", type=int, default=40,
                        help="tasks of the Celery prefork x2 round (it runs two at a time)")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args(argv)
    ours = orchestrator(args.tasks, args.sleep_s, args.concurrency, args.rate)
    celery = celery_prefork_sleepers(args.celery_tasks, args.sleep_s)
    theirs = {"system": "celery prefork x2", "tasks": celery.tasks, "rate": round(celery.rate, 1),
              "in_flight": 2}
    print(json.dumps({"orchestrator": ours, "celery_prefork": theirs}, indent=2))
    if args.json:
        return 0
    print(f"\n{'measure':<28}{'orchestrator':>14}{'celery prefork x2':>20}{'target':>12}  verdict")
    rows = [("tasks/s", ours["rate"], theirs["rate"], f">= {TARGETS['rate']:.0f}",
             ours["rate"] >= TARGETS["rate"]),
            ("tasks in flight (most)", ours["in_flight"], 2, f">= {TARGETS['in_flight']}",
             ours["in_flight"] >= TARGETS["in_flight"]),
            ("agent RSS peak (MiB)", ours["rss_mib"], "-", f"< {TARGETS['rss_mib']:.0f}",
             ours["rss_mib"] is not None and ours["rss_mib"] < TARGETS["rss_mib"]),
            ("event-loop lag p99 (ms)", ours["lag_p99_ms"], "-", f"< {TARGETS['lag_p99_ms']:.0f}",
             ours["lag_p99_ms"] is not None and ours["lag_p99_ms"] < TARGETS["lag_p99_ms"])]
    for name, mine, peer, target, ok in rows:
        print(f"{name:<28}{mine!s:>14}{peer!s:>20}{target:>12}  {'ok' if ok else 'MISSED'}")
    print(f"\nratio to celery prefork x2: {ours['rate'] / theirs['rate']:.0f}x"
          if theirs["rate"] else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
