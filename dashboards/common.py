"""What every panel shares: the one Prometheus datasource, units, queries, and the panel factories.

A factory takes the PromQL (built by :mod:`dashboards.promql` from catalog objects), a unit and
what the signal means, and returns an SDK builder. Given an ``alerts.panels.Panel`` instead of a
title, it takes that panel's id and title and draws the warning/critical values of every alert
linking there as threshold steps, with the alert and its runbook link in the description.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from string import ascii_uppercase
from typing import TypeVar

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import gauge, heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from alerts.model import Slo, Threshold
from catalog.panels import DASHBOARD_TITLES, DATASOURCE_UID, Panel
from dashboards import levels as lv

DATASOURCE_TYPE = "prometheus"


def datasource() -> dm.DataSourceRef:
    return dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


# Grafana unit ids
SECONDS = "s"
RATIO = "percentunit"
"""0..1 shown as a percentage."""
COUNT = "short"
BYTES = "bytes"
REQUESTS_PER_SECOND = "reqps"
OPS = "ops"
"""Events (tasks, calls, publishes, errors) per second."""
COUNTS_PER_SECOND = "cps"
NONE = "none"

AnyPanel = timeseries.Panel | stat.Panel | gauge.Panel | heatmap.Panel | table.Panel
P = TypeVar("P", timeseries.Panel, stat.Panel, gauge.Panel, heatmap.Panel, table.Panel)


UP_DOWN: list[dm.ValueMapping] = [dm.ValueMap(options={
    "0": dm.ValueMappingResult(text="down", index=0),
    "1": dm.ValueMappingResult(text="up", index=1)})]
"""For 0/1 health gauges."""


@dataclass(frozen=True)
class Query:
    """One Prometheus target of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    fmt: PromQueryFormat | None = None


def target(query: Query, ref_id: str) -> prometheus.Dataquery:
    built = (prometheus.Dataquery().expr(query.expr).ref_id(ref_id).datasource(datasource())
             .legend_format(query.legend or "__auto"))
    built = built.instant() if query.instant else built.range()
    return built.format(query.fmt) if query.fmt is not None else built


def dashboard_link(uid: str) -> db.DashboardLink:
    """A link to another dashboard, keeping the time range."""
    return (db.DashboardLink(DASHBOARD_TITLES[uid]).type(dm.DashboardLinkType.LINK)
            .url(f"/d/{uid}").keep_time(True))


@dataclass(frozen=True)
class _Resolved:
    title: str
    panel_id: int | None
    thresholds: tuple[Threshold, ...]
    slos: tuple[Slo, ...]


def _resolve(title: str | Panel, thresholds: Sequence[Threshold] | None) -> _Resolved:
    if isinstance(title, Panel):
        drawn = lv.thresholds_on(title) if thresholds is None else tuple(thresholds)
        return _Resolved(title.title, title.panel_id, drawn, lv.slos_on(title))
    return _Resolved(title, None, tuple(thresholds or ()), ())


def _configure(panel: P, title: str | Panel, queries: Sequence[Query], *, unit: str,
               description: str, thresholds: Sequence[Threshold] | None,
               extra: Sequence[lv.Level], links: Sequence[str]) -> P:
    if not 0 < len(queries) <= len(ascii_uppercase):
        raise ValueError(f"{title}: {len(queries)} queries")
    resolved: _Resolved = _resolve(title, thresholds)
    lv.check_unit(resolved.thresholds, unit)
    notes = lv.alert_notes(resolved.thresholds, resolved.slos)
    panel.title(resolved.title).description(f"{description}\n\n{notes}".strip())
    panel.datasource(datasource()).unit(unit)
    if resolved.panel_id is not None:
        panel.id(resolved.panel_id)
    for ref_id, query in zip(ascii_uppercase, queries, strict=False):
        panel.with_target(target(query, ref_id))
    levels = [*lv.threshold_levels(resolved.thresholds), *extra]
    panel.thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
                     .steps(lv.steps(levels)))
    if links:
        panel.links([dashboard_link(uid) for uid in links])
    return panel


def has_levels(panel: AnyPanel) -> bool:
    config = panel.build().field_config
    assert config is not None and config.defaults is not None
    return config.defaults.thresholds is not None and len(config.defaults.thresholds.steps) > 1


def timeseries_panel(title: str | Panel, queries: Sequence[Query], *, unit: str,
                     description: str, thresholds: Sequence[Threshold] | None = None,
                     extra: Sequence[lv.Level] = (), links: Sequence[str] = (),
                     stacked: bool = False, min_value: float | None = None,
                     max_value: float | None = None) -> timeseries.Panel:
    """A graph over time; alert values are drawn as horizontal threshold lines."""
    panel = _configure(timeseries.Panel(), title, queries, unit=unit, description=description,
                       thresholds=thresholds, extra=extra, links=links)
    panel.line_width(1).fill_opacity(25 if stacked else 10).show_points(cm.VisibilityMode.NEVER)
    panel.legend(cb.VizLegendOptions().show_legend(True)
                 .display_mode(cm.LegendDisplayMode.LIST).placement(cm.LegendPlacement.BOTTOM))
    panel.tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI)
                  .sort(cm.SortOrder.DESCENDING))
    if stacked:
        panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    mode = (cm.GraphThresholdsStyleMode.LINE if has_levels(panel)
            else cm.GraphThresholdsStyleMode.OFF)
    panel.thresholds_style(cb.GraphThresholdsStyleConfig().mode(mode))
    if min_value is not None:
        panel.min(min_value)
    if max_value is not None:
        panel.max(max_value)
    return panel


def stat_panel(title: str | Panel, queries: Sequence[Query], *, unit: str, description: str,
               thresholds: Sequence[Threshold] | None = None, extra: Sequence[lv.Level] = (),
               links: Sequence[str] = (), background: bool = False,
               sparkline: bool = True,
               mappings: Sequence[dm.ValueMapping] = ()) -> stat.Panel:
    """The latest value, coloured by the threshold step it falls in."""
    panel = _configure(stat.Panel(), title, queries, unit=unit, description=description,
                       thresholds=thresholds, extra=extra, links=links)
    panel.reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    panel.color_mode(cm.BigValueColorMode.BACKGROUND if background
                     else cm.BigValueColorMode.VALUE)
    panel.graph_mode(cm.BigValueGraphMode.AREA if sparkline else cm.BigValueGraphMode.NONE)
    panel.text_mode(cm.BigValueTextMode.VALUE_AND_NAME).justify_mode(cm.BigValueJustifyMode.AUTO)
    panel.orientation(cm.VizOrientation.AUTO)
    panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    if mappings:
        panel.mappings(list(mappings))
    return panel


def gauge_panel(title: str | Panel, queries: Sequence[Query], *, unit: str, description: str,
                min_value: float, max_value: float,
                thresholds: Sequence[Threshold] | None = None,
                links: Sequence[str] = ()) -> gauge.Panel:
    """A bounded value on a dial with the threshold bands around it."""
    panel = _configure(gauge.Panel(), title, queries, unit=unit, description=description,
                       thresholds=thresholds, extra=(), links=links)
    panel.reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    panel.show_threshold_markers(True).show_threshold_labels(False)
    panel.min(min_value).max(max_value)
    panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    return panel


def heatmap_panel(title: str, query: Query, *, unit: str, description: str) -> heatmap.Panel:
    """Histogram buckets over time (the query must return ``le`` buckets in heatmap format)."""
    panel = _configure(heatmap.Panel(), title, [query], unit=unit, description=description,
                       thresholds=None, extra=(), links=())
    panel.calculate(False)
    panel.color(heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME)
                .scheme("Oranges").scale(hm.HeatmapColorScale.EXPONENTIAL).exponent(0.5)
                .steps(64).fill("dark-orange").reverse(False))
    panel.rows_frame(heatmap.RowsHeatmapOptions().layout(cm.HeatmapCellLayout.LE))
    panel.y_axis(heatmap.YAxisConfig().unit(unit).axis_placement(cm.AxisPlacement.LEFT))
    panel.cell_values(heatmap.CellValues().unit(COUNT))
    panel.show_value(cm.VisibilityMode.NEVER)
    panel.hide_from(cb.HideSeriesConfig().legend(False).tooltip(False).viz(False))
    return panel


def table_panel(title: str, queries: Sequence[Query], *, unit: str,
                description: str) -> table.Panel:
    """Instant values as rows, one column per label (e.g. which versions run where)."""
    panel = _configure(table.Panel(), title, queries, unit=unit, description=description,
                       thresholds=None, extra=(), links=())
    panel.align(cm.FieldTextAlignment.AUTO).inspect(False).show_header(True)
    panel.with_transformation(dm.DataTransformerConfig(
        id_val="organize", options={"excludeByName": {"Time": True, "Value": True}}))
    return panel
