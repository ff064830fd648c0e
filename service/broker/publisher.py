"""Publishing task messages: persistent, confirmed, routed by the task's state."""

from __future__ import annotations

from typing import Any

import msgspec
from aio_pika import DeliveryMode, Message

from service import names
from service.broker.topology import Topology, delay_step_ms
from service.db.outbox import PendingMessage
from service.domain import TaskStatus

_RETRY_NOW_S = 0.05  # a retry due within this is sent straight to the work exchange


class TaskMessage(msgspec.Struct, frozen=True):
    """The body of every task message: the id, the agent and the attempt it starts."""

    task_id: str
    agent: str
    attempt: int


_encode = msgspec.json.Encoder().encode
decode_task_message = msgspec.json.Decoder(TaskMessage).decode


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
        if pending.traceparent:
            headers[names.TRACEPARENT_HEADER] = pending.traceparent
        exchange_name = names.WORK_EXCHANGE
        detail: dict[str, Any] = {"exchange": exchange_name, "routing_key": pending.agent}
        if status is TaskStatus.RETRYING and pending.delay_s > _RETRY_NOW_S:
            step = delay_step_ms(pending.delay_s)
            await self.topology.declare_delay_queue(step)
            headers[names.DELAY_HEADER] = step
            exchange_name = names.DELAY_EXCHANGE
            detail = {"exchange": exchange_name, "queue": names.delay_queue(step)}
        elif status is TaskStatus.DEAD:
            exchange_name = names.DEAD_EXCHANGE
            detail = {"exchange": exchange_name, "queue": names.DEAD_LETTER_QUEUE}
        body = TaskMessage(pending.task_id, pending.agent, pending.attempts + 1)
        message = Message(
            _encode(body), content_type="application/json", message_id=pending.task_id,
            delivery_mode=DeliveryMode.PERSISTENT, headers=headers, type=status.value,
        )
        exchange = self.topology.exchanges[exchange_name]
        await exchange.publish(message, routing_key=pending.agent, mandatory=True)
        return detail

    async def broadcast_cancel(self, task_id: str) -> None:
        """Tell every worker that a running task should stop (cooperative cancel)."""
        exchange = self.topology.exchanges[names.CONTROL_EXCHANGE]
        await exchange.publish(
            Message(_encode({"cancel": task_id}), content_type="application/json"),
            routing_key="",
        )
