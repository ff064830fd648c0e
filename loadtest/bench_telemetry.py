"""Telemetry overhead: ``GET /health/live`` and ``POST /v1/tasks`` with metrics and tracing on and
off, measured in one run with the configurations interleaved.

Two views of the same cost: requests/s, and the API's CPU time per request (all its processes
and threads, from the scheduler's counters in ``/proc``). On this shared machine both swing by
tens of percent from one sample to the next; the verdict takes the best CPU sample of each
configuration (see ``overheads``).

    python -m loadtest.bench_telemetry --requests 4000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import NamedTuple

from loadtest.deployment import Deployment, own_deployment
from loadtest.rawhttp import HttpConnection
from service.settings import Settings

CONFIGS: dict[str, dict[str, str]] = {
    "telemetry off": {"ORCH_METRICS_ENABLED": "false", "ORCH_TRACING_ENABLED": "false"},
    "metrics on": {"ORCH_METRICS_ENABLED": "true", "ORCH_TRACING_ENABLED": "false"},
    "metrics + tracing on": {"ORCH_METRICS_ENABLED": "true", "ORCH_TRACING_ENABLED": "true"},
}
ENDPOINTS = {"GET /health/live": 5, "POST /v1/tasks": 1}
"""Each endpoint with its share of requests per sample: a liveness probe costs a tenth of a
submission, so it gets more requests for a sample of comparable length."""


class Sample(NamedTuple):
    rate: float  # requests per second
    cpu_ms: float  # API CPU milliseconds per request


async def measure_requests(deployment: Deployment, endpoint: str, count: int,
                           connections: int) -> Sample:
    """Send ``count`` requests over ``connections`` keep-alive connections (opened first)."""
    method, path = endpoint.split(" ", 1)
    body = json.dumps({"agent": "echo", "input": {"n": 1}}).encode() if method == "POST" else b""
    expected = 202 if method == "POST" else 200
    conns = [HttpConnection(deployment.url, {"Authorization": f"Bearer {deployment.key}"})
             for _ in range(connections)]

    async def drive(conn: HttpConnection, todo: Iterator[int]) -> None:
        for _ in todo:
            status, payload = await conn.request(method, path, body)
            if status != expected:
                raise RuntimeError(f"{endpoint} answered {status}: {payload[:200]!r}")

    await asyncio.gather(*(drive(c, iter(range(1))) for c in conns))  # connect
    todo = iter(range(count))
    cpu_before, started = deployment.api_cpu_s(), time.perf_counter()
    await asyncio.gather(*(drive(c, todo) for c in conns))
    elapsed, cpu_s = time.perf_counter() - started, deployment.api_cpu_s() - cpu_before
    for conn in conns:
        await conn.close()
    return Sample(count / elapsed, cpu_s * 1000 / count)


Samples = dict[str, dict[str, list[Sample]]]
"""By configuration, then endpoint: one sample per round."""


def run(requests: int, rounds: int, connections: int, port: int) -> Samples:
    """Requests/s and CPU per request, by configuration and endpoint, one sample per round.

    One API per configuration runs side by side (ports ``port``, ``port + 1``, ...), idle but
    for the one being measured; each round measures every configuration in turn, in a rotated
    order, so drift of the machine spreads over all of them instead of favouring one.
    """
    samples: Samples = {c: {e: [] for e in ENDPOINTS} for c in CONFIGS}
    order = list(CONFIGS)
    with ExitStack() as stack:
        deployments = {
            name: stack.enter_context(own_deployment(  # the first one exits last
                Settings.from_env(), port + n, extra_env=CONFIGS[name], drop_vhost=n == 0))
            for n, name in enumerate(CONFIGS)}
        for deployment in deployments.values():
            for endpoint in ENDPOINTS:
                asyncio.run(measure_requests(deployment, endpoint, requests // 4,
                                             connections))  # warm-up
        for round_no in range(rounds):
            rotated = order[round_no % len(order):] + order[:round_no % len(order)]
            for endpoint in ENDPOINTS:
                for name in rotated:
                    got = asyncio.run(measure_requests(deployments[name], endpoint,
                                                       requests * ENDPOINTS[endpoint],
                                                       connections))
                    samples[name][endpoint].append(got)
                    print(f"round {round_no + 1} {name:<22} {endpoint:<18} {got.rate:8.0f} req/s"
                          f" {got.cpu_ms:7.3f} ms CPU/request", file=sys.stderr)
    return samples


def medians(samples: Samples) -> dict[str, dict[str, Sample]]:
    return {c: {e: Sample(statistics.median(x.rate for x in v),
                          statistics.median(x.cpu_ms for x in v)) for e, v in per.items()}
            for c, per in samples.items()}


def overheads(samples: Samples) -> dict[str, dict[str, dict[str, float]]]:
    """Per configuration and endpoint, as fractions of telemetry off:

    - ``cpu``: extra API CPU per request, best sample against best sample. Interference from
      other tenants of the machine only ever adds CPU time, so the lowest of many samples is
      the cost of the code itself (what ``timeit`` reports, for the same reason);
    - ``cpu_median`` and ``throughput`` (fewer requests/s): the median over the rounds of the
      ratio to telemetry off in the same round, so slow drift of the machine cancels; these
      still carry the machine's noise.
    """
    base = samples["telemetry off"]

    def paired(values: list[Sample], offs: list[Sample],
               ratio: Callable[[Sample, Sample], float]) -> float:
        return round(statistics.median(ratio(got, off) for got, off in
                                       zip(values, offs, strict=True)), 3)

    return {name: {e: {"cpu": round(min(x.cpu_ms for x in v) / min(x.cpu_ms for x in base[e])
                                    - 1, 3),
                       "cpu_median": paired(v, base[e], lambda got, off: got.cpu_ms / off.cpu_ms
                                            - 1),
                       "throughput": paired(v, base[e], lambda got, off: 1 - got.rate / off.rate)}
                   for e, v in per.items()}
            for name, per in samples.items() if name != "telemetry off"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args(argv)
    samples = run(args.requests, args.rounds, args.connections, args.port)
    print(f"\n{'configuration':<24}{'endpoint':<20}{'req/s':>8}{'CPU ms/req':>12}"
          f"{'CPU overhead (best; median)':>30}{'req/s overhead':>16}")
    extra = overheads(samples)
    for name, per in medians(samples).items():
        for endpoint, got in per.items():
            cost = extra.get(name, {}).get(endpoint)
            cells = (f"{cost['cpu']:>22.1%}; {cost['cpu_median']:>6.1%}"
                     f"{cost['throughput']:>16.1%}" if cost else f"{'-':>30}{'-':>16}")
            print(f"{name:<24}{endpoint:<20}{got.rate:>8.0f}{got.cpu_ms:>12.3f}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
