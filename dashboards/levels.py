"""Alert thresholds as dashboard lines: the warning/critical values of ``alerts.thresholds`` and
the SLO burn-rate factors become Grafana threshold steps, read from the objects (never retyped),
and the panel description names the alert and links its runbook section."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.models import dashboard as dm

from alerts.links import LOCAL
from alerts.model import Severity, Slo, Threshold
from alerts.slos import BURN_RATE_WINDOWS, SLOS, alert_name
from alerts.thresholds import THRESHOLDS
from catalog import panels
from catalog.panels import Panel

OK = "green"
COLORS = {Severity.WARNING: "orange", Severity.CRITICAL: "red"}
RANK = {Severity.WARNING: 1, Severity.CRITICAL: 2}

UNITS = {"%": "percentunit", "s": "s", "bytes": "bytes"}
"""Grafana unit of a threshold's ``unit`` (``%`` thresholds are ratios: 0.05 = 5%)."""


@dataclass(frozen=True)
class Level:
    """One line on a panel: at ``value`` the signal enters (``above``) or leaves (not ``above``)
    ``severity``."""

    value: float
    severity: Severity
    above: bool


def alert_panels(dashboard: str) -> tuple[Panel, ...]:
    """The panels of ``dashboard`` that alerts link to (``alerts.panels``)."""
    return tuple(p for p in vars(panels).values()
                 if isinstance(p, Panel) and p.dashboard == dashboard)


def thresholds_on(panel: Panel) -> tuple[Threshold, ...]:
    return tuple(t for t in THRESHOLDS if t.panel == panel)


def slos_on(panel: Panel) -> tuple[Slo, ...]:
    return tuple(slo for slo in SLOS if slo.panel == panel)


def threshold(alert: str) -> Threshold:
    """The threshold of an alert, by name."""
    return next(t for t in THRESHOLDS if t.alert == alert)


def fires_above(t: Threshold) -> bool:
    """True when the alert fires as the signal rises past the value (``>``, ``>=``)."""
    found = re.search(r"(<=|>=|<|>)\s*\{value\}", t.expr)
    if not found:
        raise ValueError(f"{t.alert}: no comparison against {{value}} in its expression")
    return found.group(1).startswith(">")


def signal(t: Threshold) -> str:
    """The left-hand side of a threshold's comparison: the exact series the alert watches
    (only for expressions of the form ``SIGNAL > {value}``)."""
    found = re.fullmatch(r"(.*?)\s*(<=|>=|<|>)\s*\{value\}", t.expr, re.S)
    if not found or "{value}" in found.group(1):
        raise ValueError(f"{t.alert}: not of the form SIGNAL > {{value}}")
    return found.group(1)


def threshold_levels(thresholds: Iterable[Threshold]) -> list[Level]:
    return [Level(value, severity, fires_above(t))
            for t in thresholds for severity, value in t.levels()]


def burn_rate_levels() -> list[Level]:
    """The burn-rate factors the SLO alerts fire at (``alerts.slos.BURN_RATE_WINDOWS``)."""
    return [Level(w.factor, w.severity, True) for w in BURN_RATE_WINDOWS]


UP = Level(1, Severity.CRITICAL, False)
"""For 0/1 health series without an alert of their own: below 1 is down."""


def objective_level(slo: Slo) -> Level:
    """The SLI falling below the objective is out of objective."""
    return Level(slo.objective, Severity.CRITICAL, False)


def _color_at(levels: Sequence[Level], x: float) -> str:
    active = [lv.severity for lv in levels
              if (lv.above and x >= lv.value) or (not lv.above and x < lv.value)]
    return COLORS[max(active, key=RANK.__getitem__)] if active else OK


def steps(levels: Sequence[Level]) -> list[dm.Threshold]:
    """Grafana threshold steps (a step's colour applies from its value up): a base colour, then
    one step at every level's value, coloured by the most severe level active there."""
    values = sorted({lv.value for lv in levels})
    return [dm.Threshold(value=None, color=_color_at(levels, -math.inf)),
            *(dm.Threshold(value=v, color=_color_at(levels, v)) for v in values)]


def check_unit(thresholds: Iterable[Threshold], unit: str) -> None:
    for t in thresholds:
        if t.unit and UNITS[t.unit] != unit:
            raise ValueError(f"{t.alert} is in {t.unit!r}; the panel shows {unit!r}")


def alert_notes(thresholds: Sequence[Threshold], slos: Sequence[Slo] = ()) -> str:
    """Markdown lines naming each alert drawn on the panel, its values and its runbook link."""
    lines = []
    for t in thresholds:
        direction = "above" if fires_above(t) else "below"
        values = " / ".join(f"{severity.value} {t.formatted(value)}"
                            for severity, value in t.levels())
        lines.append(f"- `{t.alert}` fires {direction} {values} (held {t.for_}):"
                     f" [runbook]({LOCAL.runbook_url(t.alert)})")
    for slo in slos:
        factors = ", ".join(f"{w.factor:g}x over {w.long}/{w.short} ({w.severity.value})"
                            for w in BURN_RATE_WINDOWS)
        lines.append(f"- `{alert_name(slo)}` fires at {factors}:"
                     f" [runbook]({LOCAL.runbook_url(alert_name(slo))})")
    return "\n".join(lines)
