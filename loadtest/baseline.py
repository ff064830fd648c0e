"""The performance baseline, measured in one run on this machine (ratios, not absolute numbers,
are what compare across runs on a shared, noisy machine):

1. the raw ceiling: insert, confirmed publish, consume, two updates, ack -- no orchestrator code;
2. end-to-end tasks/s over HTTP with echo tasks (API + one agent process);
3. ``POST /v1/tasks`` p50/p99 at half that rate (open model: latency from the intended send time);
4. optionally the telemetry overhead (``--telemetry``: the API's CPU per request and requests/s
   with metrics and tracing on and off).

    python -m loadtest.baseline --tasks 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from loadtest import bench_pipeline, bench_telemetry, raw_ceiling
from loadtest.deployment import own_deployment
from loadtest.generator import LoadConfig, run_load
from loadtest.profiles import Constant
from loadtest.workload import Workload
from service.settings import Settings

TARGETS = {"end_to_end_rate": 500.0, "ratio_to_ceiling": 0.8, "submit_p99_ms_at_half": 50.0,
           "telemetry_overhead": 0.10}


async def submit_latency_at(url: str, key: str, rate: float, seconds: float) -> dict[str, Any]:
    config = LoadConfig(url=url, api_key=key, profile=Constant(rate),
                        workload=Workload({"echo": 1.0}), queue_wait_target_s=None,
                        duration_s=seconds, track_fraction=0.0, progress=False)
    stats = (await run_load(config)).stats
    p50, p99 = stats.submit.percentile(0.5), stats.submit.percentile(0.99)
    return {"rate": round(rate, 1), "achieved": round(stats.achieved_rate() or 0.0, 1),
            "p50_ms": round((p50 or 0) * 1000, 2), "p99_ms": round((p99 or 0) * 1000, 2),
            "errors": sum(stats.errors.values())}


def measure(tasks: int, port: int, telemetry: bool, api_workers: int) -> dict[str, Any]:
    ceiling = asyncio.run(raw_ceiling.measure(tasks))
    with own_deployment(Settings.from_env(), port, agents="echo",
                        api_workers=api_workers) as deployment:
        url, key = deployment.url, deployment.key
        pipeline = asyncio.run(bench_pipeline.measure(url, key, deployment.database_url, tasks,
                                                      32))
        half = asyncio.run(submit_latency_at(url, key, pipeline.end_to_end_rate / 2, 20))
    result: dict[str, Any] = {
        "api_workers": api_workers, "agent_processes": 1,
        "raw_ceiling_rate": round(ceiling, 1),
        "end_to_end_rate": pipeline.end_to_end_rate,
        "ratio_to_ceiling": round(pipeline.end_to_end_rate / ceiling, 3),
        "submit_at_half_rate": half,
    }
    if telemetry:
        samples = bench_telemetry.run(requests=2000, rounds=15, connections=16,
                                      port=port + 1)
        result["telemetry_overhead"] = bench_telemetry.overheads(samples)
    return result


def verdicts(result: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    rows = [
        ("end-to-end tasks/s", f"{result['end_to_end_rate']:.0f}",
         f">= {TARGETS['end_to_end_rate']:.0f}",
         result["end_to_end_rate"] >= TARGETS["end_to_end_rate"]),
        ("ratio to the raw ceiling", f"{result['ratio_to_ceiling']:.2f}"
         f" ({result['raw_ceiling_rate']:.0f}/s)", f">= {TARGETS['ratio_to_ceiling']}",
         result["ratio_to_ceiling"] >= TARGETS["ratio_to_ceiling"]),
        ("POST p50 / p99 at half rate (ms)",
         f"{result['submit_at_half_rate']['p50_ms']} / {result['submit_at_half_rate']['p99_ms']}",
         f"p99 <= {TARGETS['submit_p99_ms_at_half']:.0f}",
         result["submit_at_half_rate"]["p99_ms"] <= TARGETS["submit_p99_ms_at_half"]),
    ]
    for name, per in result.get("telemetry_overhead", {}).items():
        # the verdict takes the API's best-sample CPU per request (bench_telemetry.overheads);
        # the paired medians of CPU and requests/s are shown beside it
        for endpoint, cost in per.items():
            rows.append((f"{name}: {endpoint} (CPU best; median; req/s)",
                         f"{cost['cpu']:.1%}; {cost['cpu_median']:.1%}; {cost['throughput']:.1%}",
                         f"<= {TARGETS['telemetry_overhead']:.0%}",
                         cost["cpu"] <= TARGETS["telemetry_overhead"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--telemetry", action="store_true", help="also measure the overhead")
    parser.add_argument("--api-workers", type=int, default=2,
                        help="API server processes (the agent is always one process)")
    args = parser.parse_args(argv)
    result = measure(args.tasks, args.port, args.telemetry, args.api_workers)
    print(json.dumps(result, indent=2))
    print(f"\n{'measure':<66}{'value':>24}{'target':>14}  verdict")
    for name, value, target, ok in verdicts(result):
        print(f"{name:<66}{value:>24}{target:>14}  {'ok' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
