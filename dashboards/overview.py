"""Overview: is it up, the golden signals, SLO budgets, task flow and backlog, and where to look
next (every panel links the dashboard with the detail)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db

from alerts.slos import SLOS
from alerts.thresholds import AGENT_QUEUES, API_ROUTES
from catalog import metrics as m
from catalog import panels as ap
from catalog.jobs import AGENT_JOB, API_JOB
from dashboards import levels as lv
from dashboards.common import (
    COUNT,
    NONE,
    OPS,
    RATIO,
    REQUESTS_PER_SECOND,
    SECONDS,
    UP_DOWN,
    Query,
    gauge_panel,
    stat_panel,
    timeseries_panel,
)
from dashboards.layout import Board
from dashboards.promql import JOBS, agg, eq, match, quantile, ratio, sel, sum_rate
from dashboards.slos import budget_stat
from dashboards.tasks import OUTCOMES


def _availability(board: Board) -> None:
    board.row("Availability")
    board.add(stat_panel(
        ap.API_TARGETS,
        [Query(f"sum({sel(m.UP, eq('job', API_JOB))}) or vector(0)", "API processes up")],
        unit=COUNT, background=True, links=(ap.API,),
        description="API processes Prometheus scrapes successfully. 0 means the API is down:"
                    " clients can neither submit nor read tasks."), 4, 5)
    board.add(stat_panel(
        ap.SCRAPE_TARGETS,
        [Query(sel(m.UP, JOBS), "{{job}} {{instance}}"),
         Query(f"count({sel(m.UP, eq('job', AGENT_JOB))} == 1) or vector(0)",
               "agent processes up")],
        unit=NONE, background=True, sparkline=False, links=(ap.PROCESS,),
        description="Each orchestrator scrape target (1 = answered the last scrape), and how"
                    " many agent processes answer. A missing target blinds every alert that"
                    " needs its metrics."), 8, 5)
    board.add(stat_panel(
        "Dependencies up",
        [Query(f"min({sel(m.DB_UP)})", "PostgreSQL"),
         Query(f"min({sel(m.BROKER_UP)})", "RabbitMQ"),
         Query(f"min({sel(m.REDIS_UP)})", "Redis")],
        unit=NONE, background=True, sparkline=False, mappings=UP_DOWN,
        thresholds=[lv.threshold("DatabaseDown"), lv.threshold("RabbitmqDown"),
                    lv.threshold("RedisDown")],
        links=(ap.DATA, ap.BROKER),
        description="Whether every process reaches PostgreSQL, RabbitMQ and Redis (the worst"
                    " process counts). Redis down degrades; the other two stop work."), 8, 5)
    board.add(stat_panel(
        "Live agents", [Query(agg("sum", m.AGENTS_LIVE), "agent workers")],
        unit=COUNT, background=True, thresholds=[lv.threshold("AgentsMissing")],
        links=(ap.TASKS,),
        description="Agent worker processes with a fresh heartbeat, all agent types."), 4, 5)


def _golden_signals(board: Board) -> None:
    board.row("Golden signals (API)")
    board.add(timeseries_panel(
        "Traffic", [Query(sum_rate(m.HTTP_REQUESTS, API_ROUTES), "requests/s")],
        unit=REQUESTS_PER_SECOND, links=(ap.API,),
        description="Requests per second answered on the /v1 API."), 6, 8)
    board.add(timeseries_panel(
        "Errors", [Query(ratio(sum_rate(m.HTTP_REQUESTS, match("status", "5..")),
                               sum_rate(m.HTTP_REQUESTS)), "5xx ratio")],
        unit=RATIO, thresholds=lv.thresholds_on(ap.API_ERRORS), links=(ap.API,),
        description="Share of API requests (all routes, as the alert counts) answered with a"
                    " server error (5xx)."), 6, 8)
    board.add(timeseries_panel(
        "Latency",
        [Query(quantile(q, m.HTTP_REQUEST_DURATION, API_ROUTES), f"p{q * 100:g}")
         for q in (0.5, 0.99)],
        unit=SECONDS, thresholds=lv.thresholds_on(ap.API_LATENCY), links=(ap.API,),
        description="Median and 99th percentile time to answer a /v1 request."), 6, 8)
    board.add(gauge_panel(
        "Saturation: database pool", [Query(agg("max", m.DB_POOL_USAGE), "pool usage")],
        unit=RATIO, min_value=0, max_value=1, thresholds=lv.thresholds_on(ap.DB_POOL_USAGE),
        links=(ap.DATA,),
        description="Connections in use over the pool maximum, worst process: the first"
                    " resource to run out under load."), 6, 8)


def _slos(board: Board) -> None:
    board.row("SLOs: error budget left")
    for slo in SLOS:
        board.add(budget_stat(slo, f"{slo.name} ({slo.objective:.3%})", links=(ap.SLOS,)),
                  24 // len(SLOS), 5)


def _tasks(board: Board) -> None:
    board.row("Tasks")
    board.add(timeseries_panel(
        "Task throughput by outcome",
        [Query(sum_rate(metric), name) for name, metric in OUTCOMES],
        unit=OPS, links=(ap.TASKS,),
        description="Tasks per second at each lifecycle step, all agents."), 12, 8)
    board.add(timeseries_panel(
        "Backlog",
        [Query(f"sum({sel(m.QUEUE_MESSAGES, AGENT_QUEUES)})", "messages in agent queues"),
         Query(agg("sum", m.TASKS_BY_STATUS, eq("status", "queued")), "queued tasks"),
         Query(agg("sum", m.TASKS_BY_STATUS, eq("status", "retrying")), "retrying tasks"),
         Query(agg("sum", m.OUTBOX_UNPUBLISHED), "unpublished (outbox)"),
         Query(f"sum({agg('max', m.DEAD_LETTERS_OPEN, by=('agent',))})",
               "open dead letters")],
        unit=COUNT, links=(ap.BROKER, ap.TASKS),
        description="Work waiting: messages in the agent queues, tasks waiting to start in"
                    " PostgreSQL, accepted tasks not yet confirmed by the broker, and dead"
                    " letters not replayed."), 12, 8)


def dashboard() -> db.Dashboard:
    board = Board(ap.OVERVIEW, "overview",
                  "Start here: availability, golden signals, SLO budgets, task flow; the"
                  " links lead to the detail dashboards.")
    _availability(board)
    _golden_signals(board)
    _slos(board)
    _tasks(board)
    return board.dashboard()
