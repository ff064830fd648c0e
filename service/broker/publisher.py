"""Publishing task messages: persistent, confirmed, routed by the task's state."""

from __future__ import annotations

import time
from typing import Any

from aio_pika import DeliveryMode, Message

from catalog import metrics, names
from catalog.priorities import band_of
from service.broker.messages import CancelCommand, TaskMessage, encode
from service.broker.topology import Topology, delay_step_ms
from service.db.outbox import PendingMessage
from service.domain import TaskStatus
from service.telemetry.tracing import publish_span

_NOW_S = 0.05  # a task due within this is sent straight to the work exchange


class Publisher:
    """Sends task messages on a confirming channel; returns what it did, for the timeline."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    async def publish(self, pending: PendingMessage) -> dict[str, Any]:
        """Publish and wait for the broker's confirm; raises when the broker did not take it."""
        status = pending.status
        if status not in (TaskStatus.QUEUED, TaskStatus.RETRYING, TaskStatus.DEAD):
            return {"skipped": status.value}
        headers: dict[str, Any] = {"x-orch-attempt": pending.attempts + 1}
        exchange_name = names.WORK_EXCHANGE
        band = band_of(pending.priority)
        routing_key = names.routing_key(pending.agent, band)
        queue = names.agent_queue(pending.agent, band)
        detail: dict[str, Any] = {"exchange": exchange_name, "routing_key": routing_key,
                                  "queue": queue}
        if status is not TaskStatus.DEAD and pending.delay_s > _NOW_S:  # a retry, or run_at
            step = delay_step_ms(pending.delay_s)
            await self.topology.declare_delay_queue(step)
            headers[names.DELAY_HEADER] = step
            exchange_name, queue = names.DELAY_EXCHANGE, names.delay_queue(step)
            detail = {"exchange": exchange_name, "queue": queue}
        elif status is TaskStatus.DEAD:
            exchange_name, queue = names.DEAD_EXCHANGE, names.DEAD_LETTER_QUEUE
            detail = {"exchange": exchange_name, "queue": queue}
        due = pending.available_at.timestamp() if pending.delay_s > 0 else None
        body = TaskMessage(pending.task_id, pending.agent, pending.attempts + 1,
                           pending.concurrency_key, due)
        exchange = self.topology.exchanges[exchange_name]
        with publish_span(pending.traceparent, exchange_name, pending.agent, pending.task_id,
                          headers):
            message = Message(
                encode(body), content_type="application/json", message_id=pending.task_id,
                delivery_mode=DeliveryMode.PERSISTENT, headers=headers, type=status.value,
            )
            started = time.perf_counter()
            # a delayed retry keeps its band's routing key: the delay queue dead-letters it back
            # to the work exchange with that key
            await exchange.publish(message, routing_key=routing_key, mandatory=True)
            metrics.PUBLISH_DURATION.labels(queue).observe(time.perf_counter() - started)
        return detail

    async def broadcast_cancel(self, task_id: str) -> None:
        """Tell every worker that a running task should stop (cooperative cancel)."""
        exchange = self.topology.exchanges[names.CONTROL_EXCHANGE]
        await exchange.publish(
            Message(encode(CancelCommand(task_id)), content_type="application/json"),
            routing_key="",
        )
