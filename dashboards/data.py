"""Database and cache: PostgreSQL reachability, the connection pool, query latency; Redis
reachability and the status-cache hit ratio; the age of the last verified backup."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from catalog import metrics as m
from catalog import panels as ap
from dashboards import variables
from dashboards.common import (
    COUNT,
    NONE,
    OPS,
    RATIO,
    SECONDS,
    UP_DOWN,
    Query,
    stat_panel,
    timeseries_panel,
)
from dashboards.layout import Board
from dashboards.promql import agg, eq, quantile, ratio, sum_rate, var

INSTANCE = var("instance")
BY_PROCESS = ("job", "instance")


def _postgres(board: Board) -> None:
    board.row("PostgreSQL")
    board.add(stat_panel(
        ap.DB_UP, [Query(agg("min", m.DB_UP, INSTANCE, by=BY_PROCESS), "{{instance}}")],
        unit=NONE, background=True, sparkline=False, mappings=UP_DOWN,
        description="Whether each process can query PostgreSQL, the source of truth. Down:"
                    " submissions fail with 503, workers hold their messages."), 6, 8)
    board.add(timeseries_panel(
        ap.DB_POOL_USAGE,
        [Query(agg("max", m.DB_POOL_USAGE, INSTANCE, by=BY_PROCESS), "{{instance}}")],
        unit=RATIO, min_value=0, max_value=1,
        description="Connections in use divided by the pool maximum, per process."), 9, 8)
    board.add(timeseries_panel(
        ap.DB_POOL_WAITING,
        [Query(agg("max", m.DB_POOL_WAITING, INSTANCE, by=BY_PROCESS), "{{instance}}")],
        unit=COUNT, min_value=0,
        description="Requests queued for a pool connection: the pool is exhausted and"
                    " every query waits."), 9, 8)


def _pool_and_queries(board: Board) -> None:
    board.add(timeseries_panel(
        "Pool connections",
        [Query(agg("sum", m.DB_POOL_SIZE, INSTANCE), "open"),
         Query(agg("sum", m.DB_POOL_AVAILABLE, INSTANCE), "idle"),
         Query(agg("sum", m.DB_POOL_MIN, INSTANCE), "configured min"),
         Query(agg("sum", m.DB_POOL_MAX, INSTANCE), "configured max")],
        unit=COUNT, min_value=0,
        description="Pool connections open and idle against the configured bounds, summed"
                    " over the selected processes."), 6, 8)
    board.add(timeseries_panel(
        "Connection errors",
        [Query(sum_rate(m.DB_CONNECTION_ERRORS, INSTANCE, by=("instance",)), "{{instance}}")],
        unit=OPS,
        description="Failed attempts to open a database connection, per second."), 6, 8)
    board.add(timeseries_panel(
        "Queries by operation",
        [Query(sum_rate(m.DB_QUERY_DURATION, INSTANCE, by=("operation",), suffix="_count"),
               "{{operation}}")],
        unit=OPS, description="Database operations per second by kind."), 6, 8)
    board.add(timeseries_panel(
        "Query latency by operation",
        [Query(quantile(q, m.DB_QUERY_DURATION, INSTANCE, by=("operation",)),
               f"p{q * 100:g} {{{{operation}}}}") for q in (0.5, 0.99)],
        unit=SECONDS,
        description="Median and 99th percentile time of one database operation, by"
                    " kind."), 6, 8)


def _redis(board: Board) -> None:
    board.row("Redis")
    board.add(stat_panel(
        ap.REDIS_UP, [Query(agg("min", m.REDIS_UP, INSTANCE, by=BY_PROCESS), "{{instance}}")],
        unit=NONE, background=True, sparkline=False, mappings=UP_DOWN,
        description="Whether each process reaches Redis. Down is degraded, not broken:"
                    " reads fall back to PostgreSQL."), 6, 8)
    board.add(timeseries_panel(
        ap.CACHE_HIT_RATIO,
        [Query(ratio(sum_rate(m.CACHE_REQUESTS, INSTANCE, eq("outcome", "hit")),
                     sum_rate(m.CACHE_REQUESTS, INSTANCE)), "hit ratio")],
        unit=RATIO, min_value=0, max_value=1,
        description="Share of status reads served from Redis."), 9, 8)
    board.add(timeseries_panel(
        "Cache requests by outcome",
        [Query(sum_rate(m.CACHE_REQUESTS, INSTANCE, by=("outcome",)), "{{outcome}}")],
        unit=OPS,
        description="Status-cache reads per second: hit, miss, and error (Redis failing)."),
        9, 8)


def _backups(board: Board) -> None:
    board.row("Backups")
    board.add(timeseries_panel(
        ap.BACKUP_AGE, [Query(agg("max", m.BACKUP_VERIFIED_AGE), "since the last verification")],
        unit=SECONDS, min_value=0,
        description="Time since the newest backup passed orchestrator backup verify (restored"
                    " into a scratch database and checked); with none verified, since the"
                    " database was set up (its first migration)."), 16, 8)
    board.add(stat_panel(
        "Last verified backup", [Query(f"{agg('max', m.BACKUP_LAST_VERIFIED)} * 1000",
                                       "verified")],
        unit="dateTimeFromNow", sparkline=False, mappings=NEVER,
        description="When the newest verified backup was verified (orchestrator backup status"
                    " lists them)."), 8, 8)


NEVER: list[dm.ValueMapping] = [dm.ValueMap(options={
    "0": dm.ValueMappingResult(text="never", index=0)})]
"""A timestamp of 0: nothing happened yet."""


def dashboard() -> db.Dashboard:
    board = Board(ap.DATA, "data", "PostgreSQL, its connection pool, the Redis cache and the"
                  " backups.",
                  variables=[variables.instance()])
    _postgres(board)
    _pool_and_queries(board)
    _redis(board)
    _backups(board)
    return board.dashboard()
