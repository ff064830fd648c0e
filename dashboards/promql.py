"""PromQL text for panels, built from catalog objects so a query can only name a catalog metric
and only filter or group by a label that metric carries."""

from __future__ import annotations

import re
from collections.abc import Sequence

from catalog.jobs import ORCHESTRATOR_JOBS
from catalog.metrics import AnyMetric, label_names, series_name

RATE_INTERVAL = "$__rate_interval"
TARGET_LABELS = ("job", "instance")
"""Labels Prometheus adds to every scraped series."""

JOBS = f'job=~"{ORCHESTRATOR_JOBS}"'
"""The orchestrator's own scrape jobs (API and agents)."""


def eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def match(label: str, regex: str) -> str:
    return f'{label}=~"{regex}"'


def var(name: str) -> str:
    """A matcher on a template variable (``includeAll`` substitutes ``.*``)."""
    return f'{name}=~"${name}"'


def _check_labels(metric: AnyMetric, labels: Sequence[str], suffix: str) -> None:
    allowed = {*label_names(metric), *TARGET_LABELS, *(("le",) if suffix == "_bucket" else ())}
    unknown = [label for label in labels if label not in allowed]
    if unknown:
        raise ValueError(f"{series_name(metric, suffix)} has no label {unknown}")


def _matcher_label(matcher: str) -> str:
    found = re.match(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)", matcher)
    if not found:
        raise ValueError(f"not a label matcher: {matcher!r}")
    return found.group(1)


def sel(metric: AnyMetric, *matchers: str, suffix: str = "") -> str:
    """``name{matchers}`` for a catalog metric."""
    _check_labels(metric, [_matcher_label(m) for m in matchers], suffix)
    name = series_name(metric, suffix)
    return f"{name}{{{','.join(matchers)}}}" if matchers else name


def _aggregate(op: str, labels: Sequence[str], inner: str) -> str:
    return f"{op} by ({', '.join(labels)}) ({inner})" if labels else f"{op}({inner})"


def agg(op: str, metric: AnyMetric, *matchers: str, by: Sequence[str] = ()) -> str:
    """``op by (labels) (name{matchers})`` for a gauge."""
    _check_labels(metric, by, "")
    return _aggregate(op, by, sel(metric, *matchers))


def rate(metric: AnyMetric, *matchers: str, suffix: str = "",
         window: str = RATE_INTERVAL) -> str:
    return f"rate({sel(metric, *matchers, suffix=suffix)}[{window}])"


def sum_rate(metric: AnyMetric, *matchers: str, by: Sequence[str] = (), suffix: str = "",
             window: str = RATE_INTERVAL) -> str:
    """``sum by (labels) (rate(name{matchers}[window]))``: events per second."""
    _check_labels(metric, by, suffix)
    return _aggregate("sum", by, rate(metric, *matchers, suffix=suffix, window=window))


def sum_increase(metric: AnyMetric, *matchers: str, by: Sequence[str] = (),
                 window: str = RATE_INTERVAL) -> str:
    """``sum by (labels) (increase(name{matchers}[window]))``: events per window."""
    _check_labels(metric, by, "")
    return _aggregate("sum", by, f"increase({sel(metric, *matchers)}[{window}])")


def quantile(q: float, histogram: AnyMetric, *matchers: str, by: Sequence[str] = ()) -> str:
    """The ``q`` quantile of a catalog histogram over ``$__rate_interval``."""
    return (f"histogram_quantile({q:g}, "
            f"{sum_rate(histogram, *matchers, by=('le', *by), suffix='_bucket')})")


def ratio(numerator: str, denominator: str) -> str:
    return f"{numerator} / {denominator}"
