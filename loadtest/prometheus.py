"""The server's view of the SLOs over the run window, from Prometheus.

Per SLO, instant queries at the end of the window:

- ``window``: the SLO's own ``errors`` and ``total`` expressions (the templates in
  :mod:`alerts.slos`) with ``[window]`` set to the run window in seconds, queried one by one.
  A ratio of two ``rate()`` sums over the same window equals the ratio of their
  ``increase()``, so errors/total is the error ratio of exactly the run, computed from the raw
  counters; total x window is about the number of events the server counted. An errors
  expression without any series (no 5xx ever recorded, say) is taken as 0 errors and flagged.
  The server's availability counts every ``/v1`` request, the status polls of the load test's
  tracker included, so its event count is higher than the client's submit count;
- ``record``: the recording rule ``orchestrator:slo_error_ratio:rate<w>{slo=...}`` whose window
  ``w`` (from :data:`alerts.slos.RATE_WINDOWS`) is closest to the run length, as the alerts see
  it (it also covers whatever ran before the load test when the run is shorter than ``w``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from alerts.model import Slo, fill
from alerts.slos import RATE_WINDOWS, SLOS, ratio_record, window_seconds


def closest_record_window(run_s: float, windows: tuple[str, ...] = RATE_WINDOWS) -> str:
    """The recording-rule window closest to ``run_s`` (on a log scale)."""
    return min(windows, key=lambda w: abs(math.log(window_seconds(w) / max(run_s, 1.0))))


def window_queries(slo: Slo, window_s: int) -> tuple[str, str]:
    """The SLO's ``errors`` and ``total`` rates over the last ``window_s`` seconds."""
    window = f"{window_s}s"
    return fill(slo.errors, window=window), fill(slo.total, window=window)


def record_query(slo: Slo, window: str) -> str:
    return f'{ratio_record(window)}{{slo="{slo.name}"}}'


@dataclass(frozen=True)
class ServerView:
    """One SLO as Prometheus saw it over the run window."""

    slo: str
    objective: float
    window_s: int
    errors_rate: float | None
    """None: the errors expression matched no series (see :attr:`note`)."""
    total_rate: float | None
    record: str
    record_error_ratio: float | None
    error: str | None = None

    @property
    def events(self) -> float | None:
        """About how many events the server counted in the window (rate x window)."""
        return None if self.total_rate is None else self.total_rate * self.window_s

    @property
    def error_ratio(self) -> float | None:
        if not self.total_rate:
            return None
        return (self.errors_rate or 0.0) / self.total_rate

    @property
    def good_ratio(self) -> float | None:
        ratio = self.error_ratio
        return None if ratio is None else 1.0 - ratio

    @property
    def note(self) -> str | None:
        if self.total_rate and self.errors_rate is None:
            return ("the errors expression matched no series, taken as 0 errors: either no bad"
                    " event was ever recorded, or its selector does not match the exposed"
                    " labels")
        return None

    @property
    def status(self) -> str:
        if self.good_ratio is None:
            return "no-data"
        return "pass" if self.good_ratio >= self.objective else "breach"

    def to_json(self) -> dict[str, Any]:
        return {"slo": self.slo, "objective": self.objective, "window_s": self.window_s,
                "errors_rate": self.errors_rate, "total_rate": self.total_rate,
                "events": self.events, "error_ratio": self.error_ratio,
                "good_ratio": self.good_ratio, "status": self.status, "note": self.note,
                "record": self.record, "record_error_ratio": self.record_error_ratio,
                "error": self.error}


def query_scalar(client: httpx.Client, query: str, at: float) -> float | None:
    """The single value of an instant query at Unix time ``at`` (None: no series, or NaN)."""
    response = client.get("/api/v1/query", params={"query": query, "time": f"{at:.3f}"})
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus: {body.get('error', body)}")
    result = body["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) else value


def server_view(prometheus_url: str, start_wall: float, end_wall: float,
                slos: tuple[Slo, ...] = SLOS, timeout_s: float = 10.0) -> list[ServerView]:
    """Every SLO's error ratio over ``[start_wall, end_wall]`` as Prometheus has it."""
    window_s = max(math.ceil(end_wall - start_wall), 1)
    record_window = closest_record_window(end_wall - start_wall)
    views = []
    with httpx.Client(base_url=prometheus_url, timeout=timeout_s) as client:
        for slo in slos:
            errors, total = window_queries(slo, window_s)
            try:
                views.append(ServerView(
                    slo.name, slo.objective, window_s, query_scalar(client, errors, end_wall),
                    query_scalar(client, total, end_wall), ratio_record(record_window),
                    query_scalar(client, record_query(slo, record_window), end_wall)))
            except (httpx.HTTPError, RuntimeError, KeyError, ValueError, IndexError) as exc:
                views.append(ServerView(slo.name, slo.objective, window_s, None, None,
                                        ratio_record(record_window), None, error=str(exc)))
    return views
