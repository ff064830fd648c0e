"""Serving metrics: the API's ``/metrics`` (multiprocess-safe) and each agent's own HTTP port."""

from __future__ import annotations

import json
import os
import platform
import socket
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
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


Health = Callable[[], tuple[bool, str]]
"""A health check: whether it holds, and a line saying why (the answer's ``detail``)."""
HEALTH_PATHS = {"/health/live": "live", "/health/ready": "ready"}


class _IPv6Server(ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes every few seconds: not worth a log line each."""


def serve_agent_metrics(host: str, port: int,
                        health: Mapping[str, Health] | None = None) -> WSGIServer:
    """Serve the default registry (with process and GC collectors) on ``host:port`` in a
    thread (``port=0`` picks a free one; ``server_port`` says which), and the ``health``
    checks (``live``, ``ready``) at ``/health/live`` and ``/health/ready``: 200 or 503 with
    ``{"status", "detail"}``, for probes."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
    metrics_app = make_wsgi_app()
    checks = dict(health or {})

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        check = checks.get(HEALTH_PATHS.get(environ.get("PATH_INFO", ""), ""))
        if check is None:
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        ok, detail = check()
        body = json.dumps({"status": "ok" if ok else "unavailable", "detail": detail}).encode()
        start_response("200 OK" if ok else "503 Service Unavailable", [
            ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store")])
        return [body]

    server_class = _IPv6Server if ":" in host else ThreadingWSGIServer
    server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="agent-metrics", daemon=True).start()
    return server
