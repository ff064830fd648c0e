"""Where this deployment's Prometheus and Alertmanager answer: the running stack's record when
there is one, else the configured ports on this machine (read by the doctor and the report)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from service.procinfo import alive
from service.settings import Settings
from stack.supervisor import load_record


@dataclass(frozen=True)
class Monitoring:
    prometheus: str
    """``http://host:port`` (a UI path such as ``/classic/graph`` dropped)."""
    alertmanager: str
    expected: bool
    """A stack started by ``orchestrator stack up`` runs: they should answer."""


def origin(url: str) -> str:
    """``http://host:port`` of a URL that may carry a UI path (``/classic/graph``)."""
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}:{parts.port}" if parts.port else \
        f"{parts.scheme}://{parts.host}"


def monitoring(settings: Settings) -> Monitoring:
    record = load_record(settings.stack_dir)
    urls = record.urls if record is not None else {}
    return Monitoring(
        origin(urls.get("Prometheus", f"http://127.0.0.1:{settings.stack.prometheus_port}")),
        origin(urls.get("Alertmanager",
                        f"http://127.0.0.1:{settings.stack.alertmanager_port}")),
        record is not None and alive(record.supervisor))
