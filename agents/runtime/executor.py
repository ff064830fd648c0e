"""One delivery, start to finish: claim in PostgreSQL, run the agent, record the outcome, ack.

The ack always comes after the outcome is committed. A delivery that cannot be recorded (the
database is unreachable for longer than the retry window) is not acked, so it comes back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import psycopg
from aio_pika.abc import AbstractIncomingMessage
from loguru import logger
from psycopg_pool import PoolTimeout

from agents.context import TaskContext
from agents.registry import get_agent
from agents.retry import GiveUp, RetryPolicy, decide
from service import names
from service.broker.publisher import TaskMessage, decode_task_message
from service.cache import Cache
from service.db.runs import NotClaimed, Run, RunStore, new_run_id
from service.domain import Task, input_checksum, result_json
from service.errors import IntegrityError, NonRetryableError
from service.settings import Settings
from service.telemetry import metrics
from service.telemetry.tracing import process_span, tracer

T = TypeVar("T")
_MAX_ERROR_CHARS = 2000


class TaskExecutor:
    """Runs deliveries with bounded concurrency and records every outcome."""

    def __init__(self, runs: RunStore, cache: Cache, settings: Settings,
                 on_outbox_change: Callable[[], None],
                 db_retry_window_s: float | None = None) -> None:
        self.runs = runs
        self.cache = cache
        self.settings = settings
        self.on_outbox_change = on_outbox_change
        self.db_retry_window_s = db_retry_window_s
        self.default_policy = RetryPolicy(
            max_attempts=settings.retry_max_attempts, base_delay_s=settings.retry_base_delay_s,
            max_delay_s=settings.retry_max_delay_s, jitter=settings.retry_jitter,
        )
        self.slots = asyncio.Semaphore(settings.concurrency)
        self.handlers: set[asyncio.Task[Any]] = set()
        self.running: dict[str, asyncio.Task[Any]] = {}
        self._cancel_requested: set[str] = set()

    @property
    def in_flight(self) -> int:
        return len(self.handlers)

    def request_cancel(self, task_id: str) -> bool:
        """Cancel the agent call of a running task, if this worker runs it."""
        child = self.running.get(task_id)
        if child is None:
            return False
        self._cancel_requested.add(task_id)
        child.cancel()
        return True

    async def watch_cancellations(self, interval_s: float = 1.0) -> None:
        """Poll for cancel requests of the tasks running here: catches a broadcast that arrived
        before the run started or was lost while the broker connection was down."""
        while True:
            await asyncio.sleep(interval_s)
            if not self.running:
                continue
            try:
                requested = await self.runs.cancel_requested_among(list(self.running))
            except (psycopg.OperationalError, PoolTimeout) as exc:
                logger.warning("cancel check skipped, database unreachable: {}", exc)
                continue
            for task_id in requested:
                if task_id not in self._cancel_requested:
                    self.request_cancel(task_id)

    async def handle(self, delivery: AbstractIncomingMessage) -> None:
        """The consumer callback."""
        me = asyncio.current_task()
        assert me is not None
        self.handlers.add(me)
        try:
            try:
                message = decode_task_message(delivery.body)
            except msgspec.DecodeError as exc:
                logger.error("malformed task message dropped to the dead-letter queue: {}", exc)
                await delivery.reject(requeue=False)
                return
            async with self.slots:
                await self._handle(message, delivery)
        finally:
            self.handlers.discard(me)

    async def _handle(self, message: TaskMessage, delivery: AbstractIncomingMessage) -> None:
        """One delivery inside its trace (continued from the message headers) and with the
        task's ids on every log line."""
        redelivered = bool(delivery.redelivered)
        with process_span(delivery.headers, names.agent_queue(message.agent), message.agent,
                          message.task_id) as span, \
                logger.contextualize(task_id=message.task_id, agent=message.agent,
                                     attempt=message.attempt, worker_id=self.runs.worker_id):
            span.set_attribute("messaging.rabbitmq.redelivered", redelivered)
            try:
                run_id = new_run_id()  # one per delivery: a retried claim stays the same claim
                claim = await self._db(lambda: self.runs.claim(
                    message.task_id, redelivered=redelivered, run_id=run_id))
                if isinstance(claim, NotClaimed):
                    span.set_attribute("orchestrator.dropped", claim.reason)
                    await self._not_claimed(message, claim, redelivered)
                else:
                    await self._run(claim)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                logger.error("database unreachable, returning the message to the queue: {}",
                             exc)
                await delivery.nack(requeue=True)
                return
            await delivery.ack()

    async def _not_claimed(self, message: TaskMessage, claim: NotClaimed,
                           redelivered: bool) -> None:
        if claim.reason == "duplicate":
            metrics.DUPLICATE_DELIVERIES.labels(message.agent).inc()
            await self._db(lambda: self.runs.record_duplicate(
                message.task_id, {"attempt": message.attempt, "redelivered": redelivered}))
            logger.info("duplicate delivery dropped")
            return
        if claim.reason == "cancelled":
            metrics.TASKS_CANCELLED.labels(message.agent).inc()
        else:
            metrics.TASKS_DEAD_LETTERED.labels(message.agent).inc()
            self.on_outbox_change()
        self._recorded(claim.task)

    async def _run(self, run: Run) -> None:
        task = run.task
        self._recorded(task)
        metrics.TASKS_STARTED.labels(task.agent).inc()
        wait_s = (task.started_at or task.updated_at) - task.available_at
        metrics.QUEUE_WAIT.labels(task.agent).observe(max(0.0, wait_s.total_seconds()))
        in_progress = metrics.TASKS_IN_PROGRESS.labels(task.agent)
        in_progress.inc()
        started = time.perf_counter()
        result: Any
        error: BaseException | None
        try:
            if input_checksum(task.input) != task.input_checksum:
                metrics.INTEGRITY_FAILURES.labels(task.agent).inc()
                result, error = None, IntegrityError(
                    f"input of task {task.id} does not match its checksum: the stored data"
                    " changed after submission; not running it")
            else:
                result, error = await self._call_agent(run)
        finally:
            in_progress.dec()
            metrics.RUN_DURATION.labels(task.agent).observe(time.perf_counter() - started)
        if error is None:
            done, error = await self._store_result(run, result)
        if error is None:
            if done is None:
                metrics.DUPLICATE_DELIVERIES.labels(task.agent).inc()
                logger.warning("result discarded: another run owns the task now")
                return
            metrics.TASKS_SUCCEEDED.labels(task.agent).inc()
            logger.info("task succeeded")
        elif isinstance(error, asyncio.CancelledError):
            done = await self._db(lambda: self.runs.cancelled(run))
            metrics.TASKS_CANCELLED.labels(task.agent).inc()
            logger.info("task cancelled while running")
        else:
            done = await self._failed(run, error)
        self._recorded(done)

    async def _store_result(self, run: Run,
                            result: Any) -> tuple[Task | None, NonRetryableError | None]:
        """Record the result. One that cannot be stored (it has no JSON form, or holds text
        PostgreSQL refuses, such as ``\\u0000``) fails the task instead, without a retry."""
        try:
            document = result_json(result)
            return await self._db(lambda: self.runs.succeed(run, document)), None
        except NonRetryableError as exc:
            return None, exc
        except psycopg.DataError as exc:
            return None, NonRetryableError(f"the agent's result cannot be stored: {exc}")

    async def _call_agent(self, run: Run) -> tuple[Any, BaseException | None]:
        """Run the agent function with its timeout; returns ``(result, error)``."""
        task = run.task
        spec = get_agent(task.agent)
        if spec is None:
            return None, NonRetryableError(f"no agent {task.agent!r} registered in this worker")
        ctx = TaskContext(task.id, task.agent, task.attempts, task.max_attempts,
                          self.runs.worker_id, self.settings)
        timeout_s = min(task.timeout_s, spec.timeout_s or task.timeout_s)
        async def traced_call() -> Any:
            with tracer().start_as_current_span(f"agent {task.agent}", attributes={
                    "orchestrator.agent": task.agent, "orchestrator.task_id": task.id,
                    "orchestrator.attempt": task.attempts}):
                return await spec.fn(task.input, ctx)

        child = asyncio.create_task(traced_call(), name=f"agent:{task.id}")
        self.running[task.id] = child
        try:
            return await asyncio.wait_for(child, timeout_s), None
        except TimeoutError:
            return None, TimeoutError(f"attempt exceeded the timeout of {timeout_s:g}s")
        except asyncio.CancelledError as exc:
            me = asyncio.current_task()
            if (me is not None and me.cancelling()) or task.id not in self._cancel_requested:
                raise  # the worker is shutting down: leave the message unacked
            return None, exc
        except Exception as exc:
            return None, exc
        finally:
            self.running.pop(task.id, None)
            self._cancel_requested.discard(task.id)
            _count_model_calls(ctx)

    async def _failed(self, run: Run, error: BaseException) -> Task | None:
        task = run.task
        metrics.TASKS_FAILED.labels(task.agent).inc()
        text = f"{type(error).__name__}: {error}"[:_MAX_ERROR_CHARS]
        spec = get_agent(task.agent)
        policy = spec.retry if spec and spec.retry else self.default_policy
        verdict = decide(task.attempts, task.max_attempts, error, policy)
        if isinstance(verdict, GiveUp):
            done = await self._db(lambda: self.runs.bury(run, text, verdict.reason))
            metrics.TASKS_DEAD_LETTERED.labels(task.agent).inc()
            logger.warning("task dead ({}): {}", verdict.reason, text)
        else:
            done = await self._db(lambda: self.runs.retry(run, text, verdict.delay_s))
            metrics.TASKS_RETRIED.labels(task.agent).inc()
            logger.info("attempt failed, retry in {:.2f}s: {}", verdict.delay_s, text)
        self.on_outbox_change()
        return done

    def _recorded(self, task: Task | None) -> None:
        """After a committed transition: refresh the status cache; time finished tasks."""
        if task is None:
            return
        self.cache.put_task(task)
        if task.status.is_final and task.finished_at is not None:
            metrics.END_TO_END.labels(task.agent, task.status.value).observe(
                (task.finished_at - task.created_at).total_seconds())

    async def _db(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run a database operation, retrying while the database is unreachable (by default
        for as long as it takes). The delivery stays unacked meanwhile: returning it to the
        queue would count towards the delivery limit, and a long outage would then dead-letter
        messages whose tasks are still queued in PostgreSQL."""
        started = time.monotonic()
        delay, warned_at = 0.2, -60.0
        while True:
            try:
                return await op()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                waited = time.monotonic() - started
                if self.db_retry_window_s is not None and waited + delay > self.db_retry_window_s:
                    raise
                if waited - warned_at >= 60:
                    warned_at = waited
                    logger.warning("database unreachable for {:.0f}s, holding the delivery and"
                                   " retrying: {}", waited, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _count_model_calls(ctx: TaskContext) -> None:
    for call in ctx.model_calls:
        labels = (ctx.agent, call["model"])
        metrics.MODEL_CALLS.labels(*labels).inc()
        metrics.MODEL_INPUT_TOKENS.labels(*labels).inc(call["tokens_in"])
        metrics.MODEL_OUTPUT_TOKENS.labels(*labels).inc(call["tokens_out"])
        metrics.MODEL_LATENCY.labels(*labels).observe(call["latency_s"])
