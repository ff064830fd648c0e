"""Alerts as data: thresholds, SLOs, scenarios and runbook entries, each defined once.

Everything rendered (Prometheus rules, promtool tests, alertmanager.yml, the runbook, dashboard
threshold lines) reads these objects, so a number changed here moves everywhere at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from catalog.metrics import AnyMetric as Metric
from catalog.panels import Panel


class Severity(StrEnum):
    """``critical`` pages (P1); ``warning`` goes to chat and a ticket (P2)."""

    CRITICAL = "critical"
    WARNING = "warning"

    @property
    def priority(self) -> str:
        return "P1" if self is Severity.CRITICAL else "P2"


@dataclass(frozen=True)
class Scenario:
    """An incident from the operations guide that alerts must make visible."""

    number: int
    title: str
    priority: str


@dataclass(frozen=True)
class Runbook:
    """The runbook section of an alert: what it means and what to do, in order."""

    meaning: str
    impact: str
    diagnose: tuple[str, ...]
    """Shell commands to run first (``orchestrator ...``, ``psql``, ``rabbitmqctl``, ``curl``)."""
    mitigate: tuple[str, ...]
    escalate: str


@dataclass(frozen=True)
class Threshold:
    """One runbook threshold: a PromQL comparison against a warning and/or critical value.

    ``expr`` is a template with ``{value}`` where the threshold goes; ``summary`` and
    ``description`` may use ``{value}`` (formatted with ``unit``) and ``{for_}``. An alert is
    rendered per severity that has a value.
    """

    alert: str
    metrics: tuple[Metric, ...]
    expr: str
    summary: str
    description: str
    scenario: Scenario
    runbook: Runbook
    panel: Panel
    for_: str = "5m"
    warning: float | None = None
    critical: float | None = None
    unit: str = ""
    test_labels: dict[str, str] = field(default_factory=dict)
    """The labels the alert carries in the promtool test (from the test series)."""
    test_series: dict[str, tuple[str, str]] = field(default_factory=dict)
    """For the promtool tests: per series (PromQL series selector), the input values that put
    the expression at the threshold's ``value`` (template ``{value}``) above and below it."""
    fold: tuple[str, ...] = ()
    """Labels whose values fold into one notification: the agent types of one missing worker
    are one incident, so one page (Alertmanager groups them without these labels)."""
    quiet_series: dict[str, str] = field(default_factory=dict)
    """For the promtool tests: inputs past the threshold where this alert must stay quiet
    because another alert names the incident (precision, not only recall)."""
    warning_setting: str | None = None
    """The setting (``section.field`` of ``Settings``) a deployment moves the warning level
    with; ``warning`` is its default, what the committed files hold."""

    def levels(self) -> list[tuple[Severity, float]]:
        out = []
        if self.warning is not None:
            out.append((Severity.WARNING, self.warning))
        if self.critical is not None:
            out.append((Severity.CRITICAL, self.critical))
        return out

    def formatted(self, value: float) -> str:
        return format_value(value, self.unit)


def fill(template: str, **values: str) -> str:
    """Put ``values`` into ``{name}`` placeholders, leaving every other brace alone (PromQL label
    matchers and Go templates such as ``{{ $labels.queue }}`` use braces too)."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def format_value(value: float, unit: str) -> str:
    """Human text for a threshold value: ``0.5s``, ``26h``, ``80%``, ``1000``."""
    if unit == "%":
        return f"{value * 100:g}%"
    if unit == "s":
        return f"{value / 3600:g}h" if value >= 3600 and value % 3600 == 0 else f"{value:g}s"
    if unit == "bytes":
        return f"{value / 2**20:g} MiB"
    return f"{value:g}{(' ' + unit) if unit else ''}"


@dataclass(frozen=True)
class Slo:
    """A service-level objective alerted with multi-window, multi-burn-rate rules."""

    name: str
    objective: float
    """e.g. 0.999: the good fraction promised over ``window``."""
    description: str
    errors: str
    """PromQL for the rate of bad events over ``{window}`` (a template)."""
    total: str
    """PromQL for the rate of all events over ``{window}``."""
    metrics: tuple[Metric, ...]
    scenario: Scenario
    runbook: Runbook
    panel: Panel
    window: str = "30d"
