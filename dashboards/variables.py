"""Template variables: multi-select, with an "All" that substitutes ``.*``, so queries filter
with ``label=~"$name"``. Values come from ``label_values()`` of catalog metrics."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from catalog import metrics as m
from catalog.metrics import AnyMetric, label_names
from dashboards.common import datasource
from dashboards.promql import JOBS, sel

ALL = ".*"


def label_variable(name: str, label: str, metric: AnyMetric, *matchers: str) -> db.QueryVariable:
    """``$name``: the values of ``label`` on ``metric``."""
    if label not in (*label_names(metric), "job", "instance"):
        raise ValueError(f"{metric} has no label {label}")
    return (db.QueryVariable(name).label(label).datasource(datasource())
            .query(f"label_values({sel(metric, *matchers)}, {label})")
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(ALL)
            .current(dm.VariableOption(selected=True, text="All", value="$__all")))


def agent() -> db.QueryVariable:
    """Agent types that have tasks in PostgreSQL."""
    return label_variable("agent", "agent", m.TASKS_BY_STATUS)


def queue() -> db.QueryVariable:
    return label_variable("queue", "queue", m.QUEUE_MESSAGES)


def instance() -> db.QueryVariable:
    """Orchestrator processes (API and agents) Prometheus scrapes."""
    return label_variable("instance", "instance", m.UP, JOBS)


def route() -> db.QueryVariable:
    return label_variable("route", "route", m.HTTP_REQUESTS)
