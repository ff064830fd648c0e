"""SLOs: burn rate per window (the recording rules alerts use), the SLI over time and the error
budget left over the SLO window."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import stat, timeseries

from alerts.model import Severity, Slo
from alerts.slos import QUEUE_WAIT_CLASSES, RATE_WINDOWS, SLOS, ratio_record, raw_error_ratio
from catalog import panels as ap
from dashboards import levels as lv
from dashboards.common import COUNT, RATIO, Query, stat_panel, timeseries_panel
from dashboards.layout import Board

SLI_WINDOWS = ("1h", "1d")
"""Recording-rule windows the SLI panel draws (each must be in ``alerts.slos.RATE_WINDOWS``)."""


def budget(slo: Slo) -> str:
    """The error budget as a PromQL number (1 - objective)."""
    return f"{1 - slo.objective:g}"


def error_ratio(slo: Slo, window: str) -> str:
    """The SLO's error ratio over ``window`` from its recording rule."""
    if window not in RATE_WINDOWS:
        raise ValueError(f"no recording rule for {window}")
    return f'{ratio_record(window)}{{slo="{slo.name}"}}'


def burn_rate(slo: Slo, window: str) -> str:
    """How many times faster than sustainable the budget burns over ``window``."""
    return f"{error_ratio(slo, window)} / {budget(slo)}"


def budget_remaining(slo: Slo) -> str:
    """The share of the error budget left over the SLO window (negative once overspent),
    from the raw counters (the recording rules stop at the longest burn-rate window)."""
    return f"1 - ({raw_error_ratio(slo, slo.window)}) / {budget(slo)}"


def budget_stat(slo: Slo, title: str, links: tuple[str, ...] = ()) -> stat.Panel:
    return stat_panel(
        title, [Query(budget_remaining(slo), "budget left")], unit=RATIO,
        description=f"{slo.description} Share of the {slo.window} error budget"
                    f" ({budget(slo)} of events) still unspent; red once it is spent.",
        extra=[lv.Level(0, Severity.CRITICAL, False)], links=links, background=True)


def _burn_panel(slo: Slo) -> timeseries.Panel:
    return timeseries_panel(
        slo.panel, [Query(burn_rate(slo, w), w) for w in RATE_WINDOWS], unit=COUNT,
        description=f"{slo.description} Error ratio divided by the budget"
                    f" ({budget(slo)}), per window: 1 spends the {slo.window} budget exactly"
                    " over the window; lines mark the burn rates the alerts fire at (both the"
                    " long and the short window of a pair must exceed it).",
        extra=lv.burn_rate_levels(), min_value=0)


def _sli_panel(slo: Slo) -> timeseries.Panel:
    extra = ""
    if slo.name == "queue-wait":
        extra = " (a good event: started within its class's target: " + ", ".join(
            f"{c.target_s:g}s for {c.name} agents" for c in QUEUE_WAIT_CLASSES) + ")"
    return timeseries_panel(
        f"{slo.name} SLI", [Query(f"1 - {error_ratio(slo, w)}", w) for w in SLI_WINDOWS],
        unit=RATIO,
        description=f"{slo.description} Good events over all events{extra}; the line is the"
                    f" objective ({slo.objective:.3%}).",
        extra=[lv.objective_level(slo)], max_value=1)


def dashboard() -> db.Dashboard:
    board = Board(ap.SLOS, "slos", "Burn rates, SLIs and error budgets of every SLO.")
    for slo in SLOS:
        board.row(f"{slo.name}: {slo.objective:.3%} over {slo.window}")
        board.add(_burn_panel(slo), 12, 8)
        board.add(_sli_panel(slo), 8, 8)
        board.add(budget_stat(slo, f"{slo.name} error budget left"), 4, 8)
    return board.dashboard()
