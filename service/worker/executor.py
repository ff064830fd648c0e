"""One delivery, start to finish: claim in PostgreSQL, run the agent, record the outcome, ack.

The ack always comes after the outcome is committed; while the database is unreachable the
delivery is held (not acked, not returned). Each transition is one lifecycle hook: metrics, log
lines and the status cache are middleware (``service.lifecycle``).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import psycopg
from aio_pika.abc import AbstractIncomingMessage
from loguru import logger
from psycopg_pool import PoolTimeout

from agents.context import LlmEndpoint, TaskContext
from agents.errors import NonRetryableError, RetryLater
from agents.registry import get_agent
from agents.retry import GiveUp, RetryPolicy, decide
from catalog import names
from catalog.priorities import BANDS
from service.broker.messages import MalformedMessage, TaskMessage, decode_task
from service.cache import Cache
from service.db.runs import NotClaimed, Run, RunStore, new_run_id
from service.domain import Task, input_intact, result_json
from service.errors import IntegrityError
from service.lifecycle import standard_lifecycle
from service.pricing import PriceTable, parse_prices
from service.settings import LlmSettings, TaskSettings
from service.streams import TaskStreams
from service.telemetry.scrub import error_text
from service.telemetry.tracing import process_span, tracer
from service.worker.flow import FlowControl, Wait
from service.worker.slots import BandedSlots

T = TypeVar("T")
_MAX_ERROR_CHARS = 2000
MAX_GIVEN_BACK = 50
"""A task told to come back later this many times spends its attempts again."""
EARLY_WAIT_S = 1.0
"""A delivery this close before its task is due waits for it; earlier ones go back."""


class TaskExecutor:
    """Runs deliveries with bounded concurrency and records every outcome."""

    def __init__(self, runs: RunStore, cache: Cache, *, concurrency: dict[str, int],
                 tasks: TaskSettings,
                 llm: LlmSettings, on_outbox_change: Callable[[], None],
                 max_json_depth: int = 64, lower_band_share: float = 0.1,
                 flow: FlowControl | None = None,
                 llm_client: httpx.AsyncClient | None = None,
                 streams: TaskStreams | None = None) -> None:
        self.runs = runs
        self.lifecycle = standard_lifecycle(cache)
        self.llm = LlmEndpoint(llm.base_url, llm.api_key, llm.model, llm.timeout_s, llm_client,
                               llm.stream)
        self.streams = streams
        self.prices = PriceTable(parse_prices(llm.prices))
        self.on_outbox_change = on_outbox_change
        self.flow = flow
        self.max_result_bytes = tasks.max_result_bytes
        self.max_result_depth = max_json_depth
        self.default_policy = RetryPolicy(
            max_attempts=tasks.max_attempts, base_delay_s=tasks.retry_base_delay_s,
            max_delay_s=tasks.retry_max_delay_s, jitter=tasks.retry_jitter,
        )
        self.slots = {agent: BandedSlots(size, len(BANDS), lower_band_share)
                      for agent, size in concurrency.items()}
        """Each agent type's run slots (``ORCH_CONCURRENCY``)."""
        self.handlers: set[asyncio.Task[Any]] = set()
        self.unacked: Counter[str] = Counter()
        """Deliveries this worker holds unacknowledged, by queue (running or waiting for a
        slot): its heartbeat reports them, since the broker's AMQP answer does not."""
        self.running: dict[str, asyncio.Task[Any]] = {}
        self._cancel_requested: set[str] = set()

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

    def consumer(self, agent: str,
                 band: int) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        """The consumer callback for the queue of one agent type's priority band."""
        return functools.partial(self.handle, agent=agent, band=band)

    async def handle(self, delivery: AbstractIncomingMessage, agent: str, band: int = 0) -> None:
        """One delivery from the queue of ``agent``'s ``band``: waits for one of the agent
        type's slots, highest band first."""
        me = asyncio.current_task()
        assert me is not None
        self.handlers.add(me)
        try:
            try:
                message = decode_task(delivery.body)
            except MalformedMessage as exc:
                logger.error("malformed task message dropped to the dead-letter queue: {}", exc)
                await delivery.reject(requeue=False)
                return
            queue = names.agent_queue(agent, band)
            self.unacked[queue] += 1
            try:
                async with self.slots[agent].hold(band):
                    await self._handle(message, delivery, queue)
            finally:
                self.unacked[queue] -= 1
        finally:
            self.handlers.discard(me)

    async def _handle(self, message: TaskMessage, delivery: AbstractIncomingMessage,
                      queue: str) -> None:
        """One delivery inside its trace (continued from the message headers) and with the
        task's ids on every log line."""
        redelivered = bool(delivery.redelivered)
        with process_span(delivery.headers, queue, message.agent, message.task_id) as span, \
                logger.contextualize(task_id=message.task_id, agent=message.agent,
                                     attempt=message.attempt, worker_id=self.runs.worker_id):
            span.set_attribute("messaging.rabbitmq.redelivered", redelivered)
            if await self._early(message):
                await delivery.ack()
                return
            # a redelivery may be of a task whose worker died running it: it is claimed again
            # whatever the limits say (the dead worker's lease still counts until it ends)
            wait = await self.flow.admit(message.agent, message.task_id, message.key) \
                if self.flow and not redelivered else None
            if wait is not None:
                span.set_attribute("orchestrator.throttled", wait.limit)
                await self._throttled(message, wait)
            else:
                try:
                    await self._claim_and_run(message, redelivered, span)
                finally:
                    if self.flow:
                        await self.flow.release(message.task_id)
            await delivery.ack()

    async def _early(self, message: TaskMessage) -> bool:
        """A delivery well before its due time goes back to the outbox (True); one due within
        ``EARLY_WAIT_S`` waits for it. Before any flow-limit slot is taken."""
        early_s = message.due - time.time() if message.due is not None else 0.0
        if early_s > EARLY_WAIT_S:
            handed = await self._db(lambda: self.runs.hand_back(message.task_id, early_s))
            if handed is not None:
                self._recorded(handed)
                self.on_outbox_change()
                return True
        elif early_s > 0:
            await asyncio.sleep(early_s)
        return False

    async def _throttled(self, message: TaskMessage, wait: Wait) -> None:
        task = await self._db(lambda: self.runs.throttle(message.task_id, wait.limit,
                                                         wait.wait_s))
        if task is not None:
            self.lifecycle.emit(lambda m: m.throttled(task, wait.limit))
            self._recorded(task)
            self.on_outbox_change()

    async def _claim_and_run(self, message: TaskMessage, redelivered: bool, span: Any) -> None:
        run_id = new_run_id()  # one per delivery: a retried claim stays the same claim
        for last in (False, False, False, False, True):
            claim = await self._db(lambda: self.runs.claim(
                message.task_id, redelivered=redelivered, run_id=run_id))
            if not (isinstance(claim, NotClaimed) and claim.reason == "early"):
                break
            if claim.early_s <= EARLY_WAIT_S and not last:  # a delay step rounds down: wait
                await asyncio.sleep(claim.early_s)
                continue
            early_s = claim.early_s  # due later: the outbox sends it to the delay it needs
            handed = await self._db(functools.partial(self.runs.hand_back, message.task_id,
                                                      early_s, anyway=last))
            if handed is not None:  # (None: it came due meanwhile; claim it again)
                self._recorded(handed)
                self.on_outbox_change()
                return
        if isinstance(claim, NotClaimed):
            span.set_attribute("orchestrator.dropped", claim.reason)
            await self._not_claimed(message, claim, redelivered)
        else:
            await self._run(claim)

    async def _not_claimed(self, message: TaskMessage, claim: NotClaimed,
                           redelivered: bool) -> None:
        if claim.reason == "duplicate":
            self.lifecycle.emit(lambda m: m.duplicate_dropped(message.agent))
            await self._db(lambda: self.runs.record_duplicate(
                message.task_id, {"attempt": message.attempt, "redelivered": redelivered}))
            return
        self.lifecycle.emit(lambda m: m.claim_refused(message.agent, claim.reason))
        if claim.reason != "cancelled":
            self.on_outbox_change()
        self._recorded(claim.task)

    async def _run(self, run: Run) -> None:
        task = run.task
        self._recorded(task)
        self.lifecycle.emit(lambda m: m.run_started(task))
        started = time.perf_counter()
        result: Any
        error: BaseException | None
        calls: list[dict[str, Any]] = []  # the attempt's model calls, as the agent reports them
        try:
            if not input_intact(task):
                self.lifecycle.emit(lambda m: m.integrity_failed(task))
                result, error = None, IntegrityError(
                    f"input of task {task.id} does not match its checksum: the stored data"
                    " changed after submission; not running it")
            else:
                result, error = await self._call_agent(run, calls)
        finally:
            seconds = time.perf_counter() - started
            self.lifecycle.emit(lambda m: m.run_ended(task, seconds))
        await self._account(run, calls)
        if error is None:
            done, error = await self._store_result(run, result)
        if error is None:
            if done is None:
                self.lifecycle.emit(lambda m: m.result_discarded(task))
                return
            self.lifecycle.emit(lambda m: m.succeeded(task))
        elif isinstance(error, asyncio.CancelledError):
            done = await self._db(lambda: self.runs.cancelled(run))
            self.lifecycle.emit(lambda m: m.cancelled_while_running(task))
        else:
            done = await self._failed(run, error)
        self._recorded(done)

    async def _store_result(self, run: Run,
                            result: Any) -> tuple[Task | None, NonRetryableError | None]:
        """Record the result. One that cannot be stored (it has no JSON form, is larger than
        ``ORCH_MAX_RESULT_BYTES`` as stored, or holds text PostgreSQL refuses, such as
        ``\\u0000``) fails the task instead, without a retry."""
        try:
            document = result_json(result, self.max_result_bytes, self.max_result_depth)
            return await self._db(lambda: self.runs.succeed(run, document)), None
        except NonRetryableError as exc:
            return None, exc
        except psycopg.DataError as exc:
            return None, NonRetryableError(f"the agent's result cannot be stored: {exc}")

    async def _call_agent(self, run: Run,
                          calls: list[dict[str, Any]]) -> tuple[Any, BaseException | None]:
        """Run the agent function with its timeout; returns ``(result, error)``. The model
        calls it reports land in ``calls``."""
        task = run.task
        spec = get_agent(task.agent)
        if spec is None:
            return None, NonRetryableError(f"no agent {task.agent!r} registered in this worker")
        report = functools.partial(self.streams.append, task.id, task.agent) \
            if self.streams else None
        ctx = TaskContext(task.id, task.agent, task.attempts, task.max_attempts,
                          self.runs.worker_id, self.llm, calls, report)
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

    async def _account(self, run: Run, calls: list[dict[str, Any]]) -> None:
        """The model calls of the attempt just ended: their cost, their metrics, the agent's
        token budget, and the task's own tokens and cost."""
        if not calls:
            return
        agent = run.task.agent
        for call in calls:
            call["cost_usd"] = self.prices.cost_usd(call["model"], int(call["tokens_in"]),
                                                    int(call["tokens_out"]))
        self.lifecycle.emit(lambda m: m.model_calls(agent, calls))
        tokens_in = sum(int(c["tokens_in"]) for c in calls)
        tokens_out = sum(int(c["tokens_out"]) for c in calls)
        if self.flow:
            await self.flow.spend_tokens(agent, tokens_in + tokens_out)
        cost = sum(float(c["cost_usd"]) for c in calls)
        if tokens_in or tokens_out or cost:
            await self._db(lambda: self.runs.add_usage(run, tokens_in, tokens_out, cost))

    async def _failed(self, run: Run, error: BaseException) -> Task | None:
        task = run.task
        text = error_text(error, _MAX_ERROR_CHARS)  # scrubbed and bounded: stored and logged
        later = error if isinstance(error, RetryLater) and task.waits < MAX_GIVEN_BACK else None
        if later is None:  # told to come back later is no failed attempt
            self.lifecycle.emit(lambda m: m.attempt_failed(task, text))
        spec = get_agent(task.agent)
        policy = spec.retry if spec and spec.retry else self.default_policy
        verdict = decide(task.attempts, task.max_attempts, error, policy)
        if later is not None:
            after_s = later.after_s
            done = await self._db(lambda: self.runs.retry_later(run, text, after_s))
            self.lifecycle.emit(lambda m: m.retry_scheduled(task, after_s, text))
        elif isinstance(verdict, GiveUp):
            reason = verdict.reason
            done = await self._db(lambda: self.runs.bury(run, text, reason))
            self.lifecycle.emit(lambda m: m.dead(task, reason, text))
        else:
            delay_s = verdict.delay_s
            done = await self._db(lambda: self.runs.retry(run, text, delay_s))
            self.lifecycle.emit(lambda m: m.retry_scheduled(task, delay_s, text))
        self.on_outbox_change()
        return done

    def _recorded(self, task: Task | None) -> None:
        if task is not None:
            self.lifecycle.emit(lambda m: m.transition_recorded(task))

    async def _db(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run a database operation, retrying for as long as the database is unreachable. The
        delivery stays unacked meanwhile: returning it to the queue would count towards the
        delivery limit, and a long outage would then dead-letter messages whose tasks are
        still queued in PostgreSQL."""
        started = time.monotonic()
        delay, warned_at = 0.2, -60.0
        while True:
            try:
                return await op()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                waited = time.monotonic() - started
                if waited - warned_at >= 60:
                    warned_at = waited
                    logger.warning("database unreachable for {:.0f}s, holding the delivery and"
                                   " retrying: {}", waited, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

