"""Broker: connections, queue depth and consumers per queue, dead letters, publishing and the
outbox backlog."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from catalog import metrics as m
from catalog import panels as ap
from catalog.jobs import RABBITMQ_JOB
from dashboards import levels as lv
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
from dashboards.promql import agg, eq, quantile, sel, sum_increase, sum_rate, var

QUEUE = var("queue")


def _connections(board: Board) -> None:
    board.row("Connections and publishing")
    board.add(stat_panel(
        ap.BROKER_UP,
        [Query(agg("min", m.BROKER_UP, by=("job", "instance")), "{{instance}}")],
        unit=NONE, background=True, sparkline=False, mappings=UP_DOWN,
        description="Whether each process has its RabbitMQ connection open. Down: tasks are"
                    " still accepted (kept in the outbox) but nothing runs."), 8, 8)
    board.add(stat_panel(
        "RabbitMQ exporter up", [Query(sel(m.UP, eq("job", RABBITMQ_JOB)), "{{instance}}")],
        unit=NONE, background=True, sparkline=False, mappings=UP_DOWN, extra=[lv.UP],
        description="Whether Prometheus scrapes each RabbitMQ node's own metrics endpoint."),
        4, 8)
    board.add(stat_panel(
        ap.RABBITMQ_NODES_DOWN, [Query(lv.signal(lv.threshold("RabbitmqNodeDown")) +
                                       " or vector(0)", "nodes down")],
        unit=COUNT, background=True, sparkline=False,
        description="RabbitMQ nodes whose metrics endpoint does not answer. The cluster serves"
                    " on while a majority of each quorum queue's members is up; the clients"
                    " move to the other nodes."), 4, 8)
    board.add(timeseries_panel(
        ap.PUBLISH_FAILURES,
        [Query(sum_rate(m.OUTBOX_PUBLISH_FAILURES), "failed (not confirmed)"),
         Query(sum_rate(m.OUTBOX_PUBLISHED), "confirmed")],
        unit=OPS,
        description="Outbox messages the broker did not confirm (they stay in the outbox and"
                    " are retried), next to the ones it confirmed, per second."), 8, 8)


def _queues(board: Board) -> None:
    board.row("Queues")
    board.add(timeseries_panel(
        ap.QUEUE_DEPTH, [Query(agg("max", m.QUEUE_MESSAGES, QUEUE, by=("queue",)), "{{queue}}")],
        unit=COUNT,
        description="Messages ready in each queue: work arriving faster than the agents"
                    " finish it."), 8, 8)
    board.add(timeseries_panel(
        ap.QUEUE_CONSUMERS,
        [Query(agg("max", m.QUEUE_CONSUMERS, QUEUE, by=("queue",)), "{{queue}}")],
        unit=COUNT, min_value=0,
        description="Consumers attached to each queue: an agent queue with waiting messages"
                    " and no consumer is served by no worker."), 8, 8)
    members = lv.threshold("QuorumQueueMembersOffline")
    board.add(timeseries_panel(
        ap.QUORUM_MEMBERS, [Query(lv.signal(members), "{{queue}}")],
        unit=RATIO, min_value=0,
        description="Each quorum queue's members online, as a share of the most it had over"
                    " the last hour. Below 1 a member is down or out of the cluster; at half"
                    " or below the queue has no majority and takes no messages."), 8, 8)


def _dead_letters_and_outbox(board: Board) -> None:
    board.row("Dead letters, outbox and publish latency")
    growth = lv.threshold("DeadLetterQueueGrowing")
    board.add(timeseries_panel(
        ap.DEAD_LETTERS,
        [Query(agg("max", m.DEAD_LETTERS_OPEN, by=("agent",)), "{{agent}} open"),
         Query(lv.signal(growth), "{{agent}} growth (alert window)")],
        unit=COUNT,
        description="Dead letters recorded and not replayed, per agent type (orchestrator dlq"
                    " list), and how much they grew over the alert's window: the threshold line"
                    " applies to the growth series. A replay takes them down."), 8, 8)
    board.add(timeseries_panel(
        ap.OUTBOX_BACKLOG,
        [Query(agg("max", m.OUTBOX_OLDEST_AGE), "oldest unpublished"),
         Query(agg("sum", m.OUTBOX_UNPUBLISHED), "unpublished tasks")],
        unit=SECONDS,
        description="Age of the oldest committed task whose message the broker has not"
                    " confirmed (left axis; the alert lines), and how many there are (right"
                    " axis).")
        .override_by_query("B", [dm.DynamicConfigValue(id_val="unit", value=COUNT),
                                 dm.DynamicConfigValue(id_val="custom.axisPlacement",
                                                       value="right")]), 8, 8)
    board.add(timeseries_panel(
        "Publish latency",
        [Query(quantile(q, m.PUBLISH_DURATION, QUEUE, by=("queue",)),
               f"p{q * 100:g} {{{{queue}}}}") for q in (0.5, 0.99)],
        unit=SECONDS,
        description="Time from publishing a task to the broker's confirm, by queue."), 8, 8)
    board.add(timeseries_panel(
        ap.RECONCILED,
        [Query(sum_increase(m.RECONCILED, by=("agent", "action")), "{{agent}} {{action}}")],
        unit=COUNT,
        description="Tasks the reconciler repaired: republished because the broker no longer"
                    " held their message (message loss), or marked dead because the broker"
                    " dead-lettered their message (workers kept dying on them)."), 12, 8)


def dashboard() -> db.Dashboard:
    board = Board(ap.BROKER, "broker", "RabbitMQ as the orchestrator sees it: connections,"
                  " queues, dead letters and the publishing outbox.",
                  variables=[variables.queue()])
    _connections(board)
    _queues(board)
    _dead_letters_and_outbox(board)
    return board.dashboard()
