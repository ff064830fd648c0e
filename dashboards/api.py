"""API: requests by route and status, errors, latency percentiles and distribution, in-flight,
and the requests the limits refused."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from alerts.thresholds import API_ROUTES
from catalog import metrics as m
from catalog import panels as ap
from dashboards import variables
from dashboards.common import (
    COUNT,
    RATIO,
    REQUESTS_PER_SECOND,
    SECONDS,
    Query,
    heatmap_panel,
    timeseries_panel,
)
from dashboards.layout import Board
from dashboards.promql import agg, match, quantile, ratio, sum_rate, var

ROUTE = var("route")
PERCENTILES = (0.5, 0.9, 0.99)


def _traffic(board: Board) -> None:
    board.row("Traffic")
    board.add(timeseries_panel(
        "Requests by route and status",
        [Query(sum_rate(m.HTTP_REQUESTS, ROUTE, by=("route", "status")),
               "{{route}} {{status}}")],
        unit=REQUESTS_PER_SECOND,
        description="Requests per second by route template and status code."), 12, 8)
    board.add(timeseries_panel(
        "4xx vs 5xx",
        [Query(sum_rate(m.HTTP_REQUESTS, ROUTE, match("status", "4..")), "4xx (client)"),
         Query(sum_rate(m.HTTP_REQUESTS, ROUTE, match("status", "5..")), "5xx (server)")],
        unit=REQUESTS_PER_SECOND,
        description="Client errors (bad input, auth, not found, rate limited) against server"
                    " errors (a failing dependency or a bug)."), 6, 8)
    board.add(timeseries_panel(
        "In-flight requests",
        [Query(agg("sum", m.HTTP_IN_FLIGHT, by=("instance",)), "{{instance}}")],
        unit=COUNT,
        description="Requests being answered right now, per API process: climbs when"
                    " requests queue behind a slow dependency."), 6, 8)
    board.add(timeseries_panel(
        "Stream followers",
        [Query(agg("sum", m.STREAM_FOLLOWERS, by=("instance",)), "{{instance}}")],
        unit=COUNT,
        description="Clients following a task's stream (GET /v1/tasks/{id}/stream) now, per"
                    " API process: each holds a connection."), 6, 8)


def _errors_and_latency(board: Board) -> None:
    board.row("Errors and latency")
    board.add(timeseries_panel(
        ap.API_ERRORS,
        [Query(ratio(sum_rate(m.HTTP_REQUESTS, match("status", "5..")),
                     sum_rate(m.HTTP_REQUESTS)), "all routes"),
         Query(ratio(sum_rate(m.HTTP_REQUESTS, ROUTE, match("status", "5.."), by=("route",)),
                     sum_rate(m.HTTP_REQUESTS, ROUTE, by=("route",))), "{{route}}")],
        unit=RATIO,
        description="Share of requests answered with a server error: over all routes (what"
                    " the alert measures) and per route."), 12, 8)
    board.add(timeseries_panel(
        ap.API_LATENCY,
        [Query(quantile(q, m.HTTP_REQUEST_DURATION, API_ROUTES, ROUTE), f"p{q * 100:g}")
         for q in PERCENTILES],
        unit=SECONDS,
        description="Median, 90th and 99th percentile time to answer a /v1 request (the"
                    " alert watches the p99)."), 12, 8)


def _latency_detail(board: Board) -> None:
    board.row("Latency detail")
    board.add(heatmap_panel(
        "Latency distribution",
        Query(sum_rate(m.HTTP_REQUEST_DURATION, API_ROUTES, ROUTE, by=("le",),
                       suffix="_bucket"), "{{le}}", fmt=PromQueryFormat.HEATMAP),
        unit=SECONDS,
        description="Requests per second in each latency bucket of the /v1 routes: a second"
                    " band appearing above the main one is a slow path."), 12, 8)
    board.add(timeseries_panel(
        "p99 latency by route",
        [Query(quantile(0.99, m.HTTP_REQUEST_DURATION, API_ROUTES, ROUTE, by=("route",)),
               "{{route}}")],
        unit=SECONDS,
        description="99th percentile answer time per /v1 route: which route is slow."), 12, 8)


def _limits(board: Board) -> None:
    board.row("Limits")
    board.add(timeseries_panel(
        "Requests refused by limit (429)",
        [Query(sum_rate(m.RATE_LIMITED, by=("limit",)), "{{limit}}")],
        unit=REQUESTS_PER_SECOND,
        description="429 answers by the limit reached: a tenant's request rate, its cap of"
                    " unfinished tasks, or failed authentications of one client address."
                    " Which tenant: the API's warning lines."), 12, 8)
    board.add(timeseries_panel(
        "Requests let through unchecked",
        [Query(sum_rate(m.RATE_LIMITER_FAIL_OPEN), "failing open")],
        unit=REQUESTS_PER_SECOND,
        description="Requests admitted without a rate check because Redis, which holds the"
                    " limits, could not answer (the limiter fails open; /health/ready says"
                    " so to admin keys)."), 12, 8)


def dashboard() -> db.Dashboard:
    board = Board(ap.API, "api", "Requests, errors and latency of the HTTP API.",
                  variables=[variables.route()])
    _traffic(board)
    _errors_and_latency(board)
    _latency_detail(board)
    _limits(board)
    return board.dashboard()
