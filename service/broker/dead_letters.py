"""The dead-letter consumer: ``orch.dead-letter`` is a transport, PostgreSQL the record.

Every message that reaches the dead-letter exchange is read here (in every process that opens
the shared resources; the consumers share the queue), recorded in ``dead_letters`` and acked:

- a task the workers gave up on (published dead by the outbox) is recorded against its task,
  with the reason from its timeline;
- a message the broker dead-lettered on its own (the delivery limit, when workers keep dying
  on a task; a rejected malformed message) first ends its task ``dead`` with the broker's
  reason (``orchestrator_reconciled_tasks_total{action="dead_lettered"}``), then is recorded;
- a message that names no task is recorded as an orphan, headers and body kept.

Recording is idempotent (a redelivered copy is recorded once), so a message is acked only
after its row is committed, and put back when PostgreSQL cannot be reached.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from loguru import logger
from psycopg_pool import PoolTimeout

from catalog import metrics, names
from service.broker.messages import MalformedMessage, decode_task
from service.broker.reconciler import DEAD_LETTERED
from service.db.dead_letters import DeadLetterStore
from service.db.recovery import RecoveryStore
from service.lifecycle import Lifecycle

_UNREACHABLE = (psycopg.OperationalError, PoolTimeout)
_PREFETCH = 50


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def broker_death(headers: dict[str, Any]) -> tuple[str, str] | None:
    """``(reason, queue)`` of a message the broker dead-lettered, ``None`` for one published
    to the dead-letter exchange on purpose (a task the workers gave up on)."""
    reason = _text(headers.get("x-first-death-reason"))
    if not reason:
        return None
    return reason, _text(headers.get("x-first-death-queue"))


def death_error(reason: str, queue: str, delivery_limit: int) -> str:
    if reason == "delivery_limit":
        return (f"the broker dead-lettered the message after {delivery_limit} deliveries from"
                f" {queue}: the workers running the task kept stopping before they finished"
                " (crashed, killed or out of memory)")
    return f"the broker dead-lettered the message from {queue} ({reason})"


def _task_of(message: AbstractIncomingMessage, queue: str) -> tuple[str | None, str]:
    """The task id and agent a dead letter names: from its body, else from its message id
    and source queue (a malformed body of a task's message still names the task)."""
    agent = names.agent_of_queue(queue)
    try:
        decoded = decode_task(message.body)
        return decoded.task_id, decoded.agent
    except MalformedMessage:
        pass
    try:
        return str(uuid.UUID(message.message_id or "")), agent
    except ValueError:
        return None, agent


class DeadLetterRecorder:
    def __init__(self, store: DeadLetterStore, recovery: RecoveryStore,
                 amqp: AbstractRobustConnection, lifecycle: Lifecycle, *,
                 delivery_limit: int) -> None:
        self.store, self.recovery, self.amqp = store, recovery, amqp
        self.lifecycle = lifecycle
        self.delivery_limit = delivery_limit

    async def start(self) -> None:
        channel = await self.amqp.channel()
        await channel.set_qos(prefetch_count=_PREFETCH)
        await channel.queue_delete(names.LEGACY_RECONCILE_QUEUE)  # absent: a no-op
        # declared and bound by the process's topology (``declare_core``), with its arguments
        queue = await channel.get_queue(names.DEAD_LETTER_QUEUE, ensure=True)
        await queue.consume(self.on_message)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        headers = dict(message.headers or {})
        death = broker_death(headers)
        task_id, agent = _task_of(message, death[1] if death else "")
        queue = death[1] if death else names.agent_queue(agent) if agent else ""
        try:
            if death is not None and task_id is not None:
                await self._end_task(task_id, agent, *death)
            recorded = await self.store.record(
                task_id, queue=queue or names.DEAD_LETTER_QUEUE,
                reason=death[0] if death else None, headers=headers, body=message.body,
                agent_hint=agent)
        except _UNREACHABLE as exc:
            logger.warning("dead letter of task {} not recorded yet: {}", task_id, exc)
            await asyncio.sleep(1.0)
            await message.nack(requeue=True)
            return
        except psycopg.DataError as exc:  # nothing PostgreSQL can store: the log keeps it
            logger.error("dead letter not recordable ({}): headers {!r}, body {!r}", exc,
                         headers, message.body[:2000])
            await message.ack()
            return
        if recorded.outcome == "orphan":
            logger.bind(agent=recorded.agent).error(
                "dead letter {} names no task ({}, from {}): recorded as an orphan; inspect"
                " it with 'orchestrator dlq show {}'", recorded.id, recorded.reason,
                queue or "?", recorded.id)
        elif recorded.outcome == "stale":
            logger.info("dead letter of task {} dropped: the task is no longer dead", task_id)
        await message.ack()

    async def _end_task(self, task_id: str, agent: str, reason: str, queue: str) -> None:
        """The broker gave up on the task's message: the task goes dead with its reason."""
        error = death_error(reason, queue, self.delivery_limit)
        task = await self.recovery.dead_by_broker(
            task_id, error, {"reason": reason, "by": "broker", "queue": queue})
        if task is not None:
            metrics.RECONCILED.labels(task.agent or agent, DEAD_LETTERED).inc()
            self.lifecycle.emit(lambda m: m.dead(task, reason, error))
            self.lifecycle.emit(lambda m: m.transition_recorded(task))
