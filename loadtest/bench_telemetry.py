"""Telemetry overhead: requests/s of ``GET /health/live`` and ``POST /v1/tasks`` with metrics and
tracing on and off, measured in one run with the configurations interleaved (the machine is
shared and noisy; ratios within one run are what count).

    python -m loadtest.bench_telemetry --requests 4000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from loadtest.deployment import own_deployment
from loadtest.rawhttp import HttpConnection
from service.settings import Settings

CONFIGS: dict[str, dict[str, str]] = {
    "telemetry off": {"ORCH_METRICS_ENABLED": "false", "ORCH_TRACING_ENABLED": "false"},
    "metrics on": {"ORCH_METRICS_ENABLED": "true", "ORCH_TRACING_ENABLED": "false"},
    "metrics + tracing on": {"ORCH_METRICS_ENABLED": "true", "ORCH_TRACING_ENABLED": "true"},
}
ENDPOINTS = ("GET /health/live", "POST /v1/tasks")


async def requests_per_second(url: str, key: str, endpoint: str, count: int,
                              connections: int) -> float:
    method, path = endpoint.split(" ", 1)
    body = json.dumps({"agent": "echo", "input": {"n": 1}}).encode() if method == "POST" else b""
    expected = 202 if method == "POST" else 200
    conns = [HttpConnection(url, {"Authorization": f"Bearer {key}"}) for _ in range(connections)]
    todo = iter(range(count))

    async def drive(conn: HttpConnection) -> None:
        for _ in todo:
            status, payload = await conn.request(method, path, body)
            if status != expected:
                raise RuntimeError(f"{endpoint} answered {status}: {payload[:200]!r}")

    await asyncio.gather(*(drive(c) for c in conns[:4]))  # connect
    todo = iter(range(count))
    started = time.perf_counter()
    await asyncio.gather(*(drive(c) for c in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        await conn.close()
    return count / elapsed


def run(requests: int, rounds: int, connections: int, port: int) -> dict[str, dict[str, float]]:
    samples: dict[str, dict[str, list[float]]] = {c: {e: [] for e in ENDPOINTS} for c in CONFIGS}
    order = list(CONFIGS)
    for round_no in range(rounds):
        # rotate which configuration goes first: no order effect favours one of them
        for name in order[round_no % len(order):] + order[:round_no % len(order)]:
            env = CONFIGS[name]
            with own_deployment(Settings.from_env(), port, extra_env=env) as (url, key, _):
                for endpoint in ENDPOINTS:
                    asyncio.run(requests_per_second(url, key, endpoint, requests // 4,
                                                    connections))  # warm-up
                    rate = asyncio.run(requests_per_second(url, key, endpoint, requests,
                                                           connections))
                    samples[name][endpoint].append(rate)
                    print(f"round {round_no + 1} {name:<22} {endpoint:<18} {rate:8.0f} req/s",
                          file=sys.stderr)
    return {c: {e: statistics.median(v) for e, v in per.items()} for c, per in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args(argv)
    medians = run(args.requests, args.rounds, args.connections, args.port)
    baseline = medians["telemetry off"]
    print(f"\n{'configuration':<24}" + "".join(f"{e:>22}" for e in ENDPOINTS)
          + "".join(f"{'overhead ' + e.split()[1]:>26}" for e in ENDPOINTS))
    for name, per in medians.items():
        cells = "".join(f"{per[e]:>16.0f} req/s" for e in ENDPOINTS)
        overheads = "".join(f"{(1 - per[e] / baseline[e]) * 100:>25.1f}%" for e in ENDPOINTS)
        print(f"{name:<24}{cells}{overheads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
