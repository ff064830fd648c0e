"""PNG plots of a report (matplotlib's Agg canvas; no display, no global pyplot state).

- ``throughput.png``: requests sent, accepted and tasks completed per second (the target rate
  too, for a capacity search);
- ``latency_over_time.png``: p50 and p99 of submit and end-to-end latency per second;
- ``latency_distribution.png``: the cumulative distribution and the percentile spectrum of the
  submit and end-to-end latencies (up to p99.9 and beyond).

Everything is drawn from the report dictionary, so a saved ``report.json`` can be plotted again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from loadtest.histogram import Histogram

_PERCENTILES = (0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _series(report: dict[str, Any]) -> list[dict[str, Any]]:
    found = report.get("find_max")
    return list(found["series"] if found else report["series"])


def throughput(report: dict[str, Any], path: Path) -> Path:
    rows = _series(report)
    seconds = [r["second"] for r in rows]
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    for key, label in (("sent", "sent"), ("accepted", "accepted (202)"),
                       ("completed", "tasks completed"), ("errors", "errors")):
        ax.plot(seconds, [r[key] for r in rows], label=label, marker=".")
    if rows and "rate" in rows[0]:
        ax.plot(seconds, [r["rate"] for r in rows], "k--", label="target rate", linewidth=1)
    ax.set_xlabel("second of the run")
    ax.set_ylabel("per second")
    ax.set_title("Throughput")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def latency_over_time(report: dict[str, Any], path: Path) -> Path:
    rows = _series(report)
    seconds = [r["second"] for r in rows]
    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    for key, label, style in (("submit_p50_ms", "submit p50", "-"),
                              ("submit_p99_ms", "submit p99", "--"),
                              ("e2e_p50_ms", "end-to-end p50", "-"),
                              ("e2e_p99_ms", "end-to-end p99", "--"),
                              ("queue_wait_p99_ms", "queue wait p99", ":")):
        points = [(s, r[key]) for s, r in zip(seconds, rows, strict=True) if r.get(key)]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=label, marker=".")
    ax.set_yscale("log")
    ax.set_xlabel("second of the run (by intended send time)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency percentiles over time")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def latency_distribution(report: dict[str, Any], path: Path) -> Path:
    fig = Figure(figsize=(11, 4))
    cdf_ax, spectrum_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    shown = 0
    for name, label in (("submit", "submit"), ("end_to_end", "end-to-end"),
                        ("queue_wait", "queue wait")):
        hist = Histogram.from_json(report["histograms"][name])
        if not hist.count:
            continue
        points = list(hist.cdf())
        cdf_ax.plot([x * 1000 for x, _ in points], [y for _, y in points], label=label,
                    drawstyle="steps-post")
        quantiles = [q for q in _PERCENTILES if q < 1 and hist.count * (1 - q) >= 1]
        shown = max(shown, len(quantiles))
        values = [hist.percentile(q) or 0.0 for q in quantiles]
        spectrum_ax.plot([1 / (1 - q) for q in quantiles], [v * 1000 for v in values],
                         marker="o", label=label)
    cdf_ax.set_xscale("log")
    cdf_ax.set_xlabel("latency (ms)")
    cdf_ax.set_ylabel("fraction at or below")
    cdf_ax.set_title("Cumulative distribution")
    cdf_ax.grid(alpha=0.3, which="both")
    cdf_ax.legend(loc="best", fontsize="small")
    spectrum_ax.set_xscale("log")
    spectrum_ax.set_yscale("log")
    ticks = [q for q in _PERCENTILES if q < 1][:max(shown, 1)]
    spectrum_ax.set_xticks([1 / (1 - q) for q in ticks], [f"p{q * 100:g}" for q in ticks],
                           rotation=45, fontsize="small")
    spectrum_ax.minorticks_off()
    spectrum_ax.set_ylabel("latency (ms)")
    spectrum_ax.set_title("Percentile spectrum")
    spectrum_ax.grid(alpha=0.3, which="both")
    spectrum_ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def write_plots(directory: Path, report: dict[str, Any]) -> list[Path]:
    """Write the three plots into ``directory``; return their paths."""
    return [throughput(report, directory / "throughput.png"),
            latency_over_time(report, directory / "latency_over_time.png"),
            latency_distribution(report, directory / "latency_distribution.png")]
