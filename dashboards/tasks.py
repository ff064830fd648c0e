"""Tasks and agents: throughput, failures, waiting and timing, the agent workers, the models."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries

from alerts.model import Severity
from alerts.slos import QUEUE_WAIT_CLASSES
from catalog import metrics as m
from catalog import panels as ap
from catalog.metrics import AnyMetric
from dashboards import levels as lv
from dashboards import variables
from dashboards.common import (
    COUNT,
    COUNTS_PER_SECOND,
    OPS,
    RATIO,
    SECONDS,
    Query,
    stat_panel,
    timeseries_panel,
)
from dashboards.layout import Board
from dashboards.promql import agg, quantile, ratio, sum_increase, sum_rate, var

AGENT = var("agent")
INSTANCE = var("instance")
PERCENTILES = (0.5, 0.9, 0.99)
OUTCOMES = (("submitted", m.TASKS_SUBMITTED), ("started", m.TASKS_STARTED),
            ("succeeded", m.TASKS_SUCCEEDED), ("failed", m.TASKS_FAILED),
            ("retried", m.TASKS_RETRIED), ("dead-lettered", m.TASKS_DEAD_LETTERED),
            ("cancelled", m.TASKS_CANCELLED))
"""Task lifecycle counters, in the order a task meets them."""


def _percentiles(title: str, histogram: AnyMetric, description: str,
                 extra: list[lv.Level] | None = None) -> timeseries.Panel:
    return timeseries_panel(
        title, [Query(quantile(q, histogram, AGENT), f"p{q * 100:g}") for q in PERCENTILES],
        unit=SECONDS, description=description, extra=extra or ())


def _throughput(board: Board) -> None:
    board.row("Throughput")
    board.add(timeseries_panel(
        ap.THROUGHPUT, [Query(sum_rate(metric, AGENT), name) for name, metric in OUTCOMES],
        unit=OPS,
        description="Tasks per second at each lifecycle step (selected agents). Started"
                    " at zero while messages wait means the pipeline is stalled."), 12, 8)
    board.add(timeseries_panel(
        "Throughput by agent",
        [Query(sum_rate(metric, AGENT, by=("agent",)), f"{{{{agent}}}} {name}")
         for name, metric in OUTCOMES if metric in (m.TASKS_SUCCEEDED, m.TASKS_FAILED,
                                                    m.TASKS_DEAD_LETTERED)],
        unit=OPS,
        description="Finished tasks per second by agent type and outcome."), 12, 8)


def _failures(board: Board) -> None:
    board.row("Failures")
    board.add(timeseries_panel(
        ap.FAILURE_RATIO,
        [Query(ratio(sum_rate(m.TASKS_FAILED, AGENT, by=("agent",)),
                     sum_rate(m.TASKS_STARTED, AGENT, by=("agent",))), "{{agent}}")],
        unit=RATIO,
        description="Share of task attempts that raised or timed out, by agent type."), 6, 8)
    board.add(timeseries_panel(
        "Retries and dead letters",
        [Query(sum_rate(m.TASKS_RETRIED, AGENT, by=("agent",)), "{{agent}} retried"),
         Query(sum_rate(m.TASKS_DEAD_LETTERED, AGENT, by=("agent",)), "{{agent}} dead")],
        unit=OPS,
        description="Retries scheduled and tasks sent to the dead-letter queue (retries"
                    " exhausted or not retryable), per second."), 6, 8)
    board.add(timeseries_panel(
        ap.DUPLICATE_RATIO,
        [Query(ratio(sum_rate(m.DUPLICATE_DELIVERIES, AGENT),
                     sum_rate(m.TASKS_STARTED, AGENT)), "duplicates / started")],
        unit=RATIO,
        description="Deliveries of a task that was already finished or owned by another"
                    " run (dropped), relative to tasks started: redeliveries after crashes"
                    " or double publishing."), 6, 8)
    board.add(timeseries_panel(
        ap.INTEGRITY,
        [Query(sum_increase(m.INTEGRITY_FAILURES, AGENT, by=("agent",)), "{{agent}}")],
        unit=COUNT,
        description="Tasks whose stored input no longer matches its checksum: data"
                    " corruption. Any value above zero is an incident."), 6, 8)


def _waiting(board: Board) -> None:
    board.row("Waiting")
    board.add(timeseries_panel(
        ap.OLDEST_QUEUED,
        [Query(agg("max", m.OLDEST_QUEUED_AGE, AGENT, by=("agent",)), "{{agent}}")],
        unit=SECONDS,
        description="How long the oldest due task of each agent type has waited to"
                    " start."), 8, 8)
    board.add(timeseries_panel(
        "Tasks by status",
        [Query(agg("sum", m.TASKS_BY_STATUS, AGENT, by=("status",)), "{{status}}")],
        unit=COUNT,
        description="Tasks in PostgreSQL by status (selected agents)."), 8, 8)
    board.add(timeseries_panel(
        "Tasks in progress",
        [Query(agg("sum", m.TASKS_IN_PROGRESS, AGENT, by=("agent",)), "{{agent}}")],
        unit=COUNT,
        description="Tasks running in the agent processes now, by agent type."), 8, 8)
    board.add(timeseries_panel(
        ap.RUNNING_PAST_TIMEOUT,
        [Query(agg("max", m.RUNNING_PAST_TIMEOUT, AGENT, by=("agent",)), "{{agent}}")],
        unit=COUNT,
        description="Tasks still running 10 s past their own timeout: held by a"
                    " hung worker. Any value above zero for minutes is an incident."), 8, 8)
    board.add(timeseries_panel(
        "Flow-limit waits",
        [Query(sum_rate(m.TASKS_THROTTLED, AGENT, by=("agent", "limit")),
               "{{agent}} {{limit}}")],
        unit=OPS,
        description="Deliveries held back per second by a flow limit of their agent type"
                    " (rate, tokens, concurrency, key_concurrency; ORCH_AGENT_LIMITS): the"
                    " tasks wait, no attempt is spent."), 8, 8)


def _timing(board: Board) -> None:
    board.row("Timing")
    board.add(_percentiles(
        "Queue wait percentiles", m.QUEUE_WAIT,
        "Time from a task (or its retry) becoming due to a worker starting it. The lines are"
        " the queue-wait SLO targets: " + ", ".join(
            f"{c.target_s:g}s for {c.description}" for c in QUEUE_WAIT_CLASSES) + ".",
        [lv.Level(c.target_s, Severity.WARNING, True) for c in QUEUE_WAIT_CLASSES]), 8, 8)
    board.add(_percentiles(
        "Run duration percentiles", m.RUN_DURATION,
        "Time an agent spent on one attempt."), 8, 8)
    board.add(timeseries_panel(
        "End-to-end percentiles by outcome",
        [Query(quantile(q, m.END_TO_END, AGENT, by=("outcome",)),
               f"p{q * 100:g} {{{{outcome}}}}") for q in (0.5, 0.99)],
        unit=SECONDS,
        description="Time from submission to the final state, by final state."), 8, 8)


def _agents(board: Board) -> None:
    board.row("Agent workers")
    board.add(stat_panel(
        ap.AGENTS_LIVE,
        [Query(agg("max", m.AGENTS_LIVE, AGENT, by=("agent",)), "{{agent}}")],
        unit=COUNT, background=True,
        description="Worker processes with a fresh heartbeat, per agent type."), 6, 8)
    board.add(timeseries_panel(
        ap.HEARTBEAT_AGE,
        [Query(agg("max", m.HEARTBEAT_AGE, AGENT, by=("agent",)), "{{agent}}")],
        unit=SECONDS,
        description="Oldest heartbeat among the workers of each agent type: a worker that"
                    " died without deregistering, or hangs."), 6, 8)
    board.add(timeseries_panel(
        "Task slots",
        [Query(agg("sum", m.AGENT_SLOTS_USED, INSTANCE, by=("instance",)),
               "{{instance}} used"),
         Query(agg("sum", m.AGENT_SLOTS_AVAILABLE, INSTANCE, by=("instance",)),
               "{{instance}} available")],
        unit=COUNT,
        description="Task slots in use and free per agent process: no free slot anywhere"
                    " means adding work only grows the queues."), 6, 8)
    board.add(timeseries_panel(
        ap.EVENT_LOOP_LAG,
        [Query(agg("max", m.EVENT_LOOP_LAG, INSTANCE, by=("job", "instance")),
               "{{instance}}")],
        unit=SECONDS,
        description="How late each process's event loop ran a timer: blocking code on the"
                    " loop stalls every request and task in that process."), 6, 8)


def _schedules(board: Board) -> None:
    board.row("Schedules")
    board.add(timeseries_panel(
        ap.SCHEDULES_OVERDUE, [Query(agg("max", m.SCHEDULE_OVERDUE), "late by")],
        unit=SECONDS, min_value=0,
        description="How long ago the most overdue active schedule should have fired (0: none"
                    " is late). The API processes fire schedules within a second of due."), 12, 8)
    board.add(timeseries_panel(
        "Schedule fires",
        [Query(sum_increase(m.SCHEDULE_FIRES, by=("outcome",)), "{{outcome}}"),
         Query(agg("max", m.SCHEDULES_ACTIVE), "active schedules")],
        unit=COUNT,
        description="Due times fired (a task created) and skipped (missed while no API ran,"
                    " policy skip) per interval, and the schedules not paused."), 12, 8)


def _models(board: Board) -> None:
    board.row("Language models and spend")
    board.add(timeseries_panel(
        "Model calls",
        [Query(sum_rate(m.MODEL_CALLS, AGENT, by=("agent", "model")),
               "{{agent}} {{model}}")],
        unit=OPS, description="Language-model calls per second by agent and model."), 8, 8)
    board.add(timeseries_panel(
        "Model tokens",
        [Query(sum_rate(m.MODEL_INPUT_TOKENS, AGENT, by=("model",)), "{{model}} in"),
         Query(sum_rate(m.MODEL_OUTPUT_TOKENS, AGENT, by=("model",)), "{{model}} out")],
        unit=COUNTS_PER_SECOND,
        description="Prompt (in) and completion (out) tokens per second by model: what the"
                    " agents cost."), 8, 8)
    board.add(timeseries_panel(
        "Model latency",
        [Query(quantile(q, m.MODEL_LATENCY, AGENT, by=("model",)),
               f"p{q * 100:g} {{{{model}}}}") for q in (0.5, 0.99)],
        unit=SECONDS, description="Median and 99th percentile model-call latency."), 8, 8)
    board.add(timeseries_panel(
        ap.MODEL_SPEND,
        [Query(f"{sum_rate(m.MODEL_COST, AGENT, by=('agent', 'model'))} * 86400",
               "{{agent}} {{model}}")],
        unit="currencyUSD", min_value=0,
        description="What the model calls cost, as USD per day at the current pace (the price"
                    " table ORCH_LLM_PRICES); the line is the daily budget"
                    " (ORCH_LLM_DAILY_BUDGET_USD, ModelSpendOverBudget)."), 12, 8)
    board.add(timeseries_panel(
        "Model errors",
        [Query(sum_rate(m.MODEL_ERRORS, AGENT, by=("agent", "kind")), "{{agent}} {{kind}}")],
        unit=OPS,
        description="Failed model calls per second by kind: timeout, rate_limited (429),"
                    " server_error (5xx), invalid_response, unreachable, refused."), 12, 8)
    board.add(timeseries_panel(
        "Task streams",
        [Query(sum_rate(m.STREAM_ENTRIES, AGENT, by=("kind", "outcome")),
               "{{kind}} {{outcome}}")],
        unit=OPS,
        description="Progress and output entries agents report per second (GET"
                    " /v1/tasks/{id}/stream), written or dropped: dropped ones found Redis"
                    " unable to take them (the tasks ran on)."), 12, 8)
    board.add(timeseries_panel(
        "Completion callbacks",
        [Query(sum_rate(m.CALLBACKS, by=("outcome",)), "{{outcome}}")],
        unit=OPS,
        description="Callback deliveries per second (callback_url): delivered, retried (tried"
                    " again with backoff), failed (given up after ORCH_CALLBACK_MAX_ATTEMPTS),"
                    " refused (an address callbacks may not call: ORCH_CALLBACK_ALLOW_PRIVATE)."),
        12, 8)


def dashboard() -> db.Dashboard:
    board = Board(ap.TASKS, "tasks", "Task flow, failures, timing, agent workers and models.",
                  variables=[variables.agent(), variables.instance()])
    _throughput(board)
    _failures(board)
    _waiting(board)
    _timing(board)
    _agents(board)
    _schedules(board)
    _models(board)
    return board.dashboard()
