"""Serving metrics: the API's ``/metrics`` (multiprocess-safe) and each agent's own HTTP port."""

from __future__ import annotations

import os
import platform
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from catalog import metrics
from service.telemetry.multiproc import MULTIPROC_ENV


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("agent-orchestrator")
    except PackageNotFoundError:
        return "0+unknown"


def mark_build(component: str) -> None:
    metrics.BUILD_INFO.labels(version(), platform.python_version(), component).set(1)


class ProcessGroupCollector(Collector):
    """``process_*`` metrics summed over the API server's processes (the supervisor and its
    workers), so every scrape answers for the whole server whichever worker serves it."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid

    def _pids(self) -> list[int]:
        try:
            children = Path(f"/proc/{self.root_pid}/task/{self.root_pid}/children").read_text()
        except OSError:
            return [os.getpid()]
        return [self.root_pid, *(int(pid) for pid in children.split())]

    def collect(self) -> Iterable[Metric]:
        totals: dict[str, float] = defaultdict(float)
        docs: dict[str, tuple[str, str]] = {}
        for pid in self._pids():
            for family in ProcessCollector(pid=_constant(pid), registry=None).collect():
                docs[family.name] = (family.documentation, family.type)
                for sample in family.samples:
                    if family.name in ("process_start_time_seconds", "process_max_fds"):
                        if pid == self.root_pid:
                            totals[sample.name] = sample.value
                    else:
                        totals[sample.name] += sample.value
        for name, (doc, kind) in docs.items():
            if kind == "counter":
                yield CounterMetricFamily(name, doc, value=totals[f"{name}_total"])
            else:
                yield GaugeMetricFamily(name, doc, value=totals[name])


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


def api_registry(extra: Iterable[Collector], workers: int) -> CollectorRegistry:
    """The registry ``/metrics`` renders: every worker's files plus the scrape-time collectors."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        root = os.getppid() if workers > 1 else os.getpid()
        registry.register(ProcessGroupCollector(root))
        GCCollector(registry=registry)  # of the worker that answers the scrape
    else:  # in-process use (tests of the app object): the default collectors
        from prometheus_client import REGISTRY

        registry = REGISTRY
    for collector in extra:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def serve_agent_metrics(host: str, port: int) -> WSGIServer:
    """Serve the default registry (with process and GC collectors) on ``host:port`` in a
    thread (``port=0`` picks a free one; ``server_port`` says which)."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
    server, _ = start_http_server(port, addr=host)
    return server
