"""The transitions of a delivery as hooks (dramatiq's middleware is the model): the executor
calls one hook per transition; metrics, log lines and the status cache are middleware.

A hook that raises is logged and never fails the delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger

from agents.context import MODEL_ERRORS
from catalog import metrics
from service.cache import Cache
from service.domain import Task


class Middleware:
    """Every hook, doing nothing: subclass and override the ones you need."""

    def duplicate_dropped(self, agent: str) -> None:
        """A delivery of a task that another run finished or holds."""

    def claim_refused(self, agent: str, reason: str) -> None:
        """A delivery of a task that is cancelled, or out of attempts (it went dead)."""

    def throttled(self, task: Task, limit: str) -> None:
        """A delivery over one of its agent's flow limits: the task waits (no attempt spent)."""

    def run_started(self, task: Task) -> None:
        """The task is claimed (``running``) and its agent is about to run."""

    def run_ended(self, task: Task, seconds: float) -> None:
        """The agent call (or the integrity check that replaced it) is over."""

    def integrity_failed(self, task: Task) -> None:
        """The stored input no longer matches its checksum: the agent is not run."""

    def model_calls(self, agent: str, calls: Sequence[dict[str, Any]]) -> None:
        """The model calls the agent recorded in its ``TaskContext``."""

    def succeeded(self, task: Task) -> None: ...

    def result_discarded(self, task: Task) -> None:
        """The run lost its claim before its result was stored (another run owns the task)."""

    def cancelled_while_running(self, task: Task) -> None: ...

    def attempt_failed(self, task: Task, error: str) -> None: ...

    def retry_scheduled(self, task: Task, delay_s: float, error: str) -> None: ...

    def dead(self, task: Task, reason: str, error: str) -> None: ...

    def transition_recorded(self, task: Task) -> None:
        """After every committed transition, with the task as stored."""


class Lifecycle:
    """Calls one hook on every middleware, in order."""

    def __init__(self, middleware: Sequence[Middleware]) -> None:
        self.middleware = list(middleware)

    def emit(self, hook: Callable[[Middleware], None]) -> None:
        for each in self.middleware:
            try:
                hook(each)
            except Exception:
                logger.exception("{} failed in a lifecycle hook", type(each).__name__)


AGENT_COUNTERS = (metrics.TASKS_SUBMITTED, metrics.TASKS_STARTED, metrics.TASKS_SUCCEEDED,
                  metrics.TASKS_FAILED, metrics.TASKS_RETRIED, metrics.TASKS_DEAD_LETTERED,
                  metrics.TASKS_CANCELLED, metrics.DUPLICATE_DELIVERIES,
                  metrics.INTEGRITY_FAILURES)


def zero_agent_counters(agents: list[str]) -> None:
    """Every per-agent counter at 0 from the start: Prometheus reads a counter's first sample as
    its starting point, so a counter that first appears at 1 would show no increase, and an
    alert on ``increase``/``rate`` would miss the first incident."""
    for counter in AGENT_COUNTERS:
        for agent in agents:
            counter.labels(agent)
    for agent in agents:
        for limit in metrics.THROTTLE_LIMITS:
            metrics.TASKS_THROTTLED.labels(agent, limit)
        for kind in metrics.STREAM_KINDS:
            for outcome in metrics.STREAM_OUTCOMES:
                metrics.STREAM_ENTRIES.labels(agent, kind, outcome)


def zero_model_counters(agents: list[str], model: str) -> None:
    """The model counters at 0 for the default model: the first error or cost is an increase."""
    for agent in agents:
        metrics.MODEL_COST.labels(agent, model)
        for kind in MODEL_ERRORS:
            metrics.MODEL_ERRORS.labels(agent, model, kind)


class RunMetrics(Middleware):
    """The task metrics of the catalog, by agent."""

    def duplicate_dropped(self, agent: str) -> None:
        metrics.DUPLICATE_DELIVERIES.labels(agent).inc()

    def claim_refused(self, agent: str, reason: str) -> None:
        counter = metrics.TASKS_CANCELLED if reason == "cancelled" else metrics.TASKS_DEAD_LETTERED
        counter.labels(agent).inc()

    def throttled(self, task: Task, limit: str) -> None:
        metrics.TASKS_THROTTLED.labels(task.agent, limit).inc()

    def run_started(self, task: Task) -> None:
        metrics.TASKS_STARTED.labels(task.agent).inc()
        wait_s = ((task.started_at or task.updated_at) - task.available_at).total_seconds()
        metrics.QUEUE_WAIT.labels(task.agent).observe(max(0.0, wait_s))
        metrics.TASKS_IN_PROGRESS.labels(task.agent).inc()

    def run_ended(self, task: Task, seconds: float) -> None:
        metrics.TASKS_IN_PROGRESS.labels(task.agent).dec()
        metrics.RUN_DURATION.labels(task.agent).observe(seconds)

    def integrity_failed(self, task: Task) -> None:
        metrics.INTEGRITY_FAILURES.labels(task.agent).inc()

    def model_calls(self, agent: str, calls: Sequence[dict[str, Any]]) -> None:
        for call in calls:
            labels = (agent, call["model"])
            metrics.MODEL_CALLS.labels(*labels).inc()
            metrics.MODEL_INPUT_TOKENS.labels(*labels).inc(call["tokens_in"])
            metrics.MODEL_OUTPUT_TOKENS.labels(*labels).inc(call["tokens_out"])
            metrics.MODEL_LATENCY.labels(*labels).observe(call["latency_s"])
            metrics.MODEL_COST.labels(*labels).inc(call.get("cost_usd", 0.0))
            if call.get("error"):
                metrics.MODEL_ERRORS.labels(*labels, call["error"]).inc()

    def succeeded(self, task: Task) -> None:
        metrics.TASKS_SUCCEEDED.labels(task.agent).inc()

    def result_discarded(self, task: Task) -> None:
        metrics.DUPLICATE_DELIVERIES.labels(task.agent).inc()

    def cancelled_while_running(self, task: Task) -> None:
        metrics.TASKS_CANCELLED.labels(task.agent).inc()

    def attempt_failed(self, task: Task, error: str) -> None:
        metrics.TASKS_FAILED.labels(task.agent).inc()

    def retry_scheduled(self, task: Task, delay_s: float, error: str) -> None:
        metrics.TASKS_RETRIED.labels(task.agent).inc()

    def dead(self, task: Task, reason: str, error: str) -> None:
        metrics.TASKS_DEAD_LETTERED.labels(task.agent).inc()

    def transition_recorded(self, task: Task) -> None:
        if task.status.is_final and task.finished_at is not None:
            metrics.END_TO_END.labels(task.agent, task.status.value).observe(
                (task.finished_at - task.created_at).total_seconds())


class RunLogs(Middleware):
    """One log line per outcome (the task's ids are on the line from the executor's context)."""

    def duplicate_dropped(self, agent: str) -> None:
        logger.info("duplicate delivery dropped")

    def throttled(self, task: Task, limit: str) -> None:
        logger.info("over the {} limit of {}: waits until {} ({} waits so far)", limit,
                    task.agent, task.available_at.isoformat(), task.waits)

    def succeeded(self, task: Task) -> None:
        logger.info("task succeeded")

    def result_discarded(self, task: Task) -> None:
        logger.warning("result discarded: another run owns the task now")

    def cancelled_while_running(self, task: Task) -> None:
        logger.info("task cancelled while running")

    def retry_scheduled(self, task: Task, delay_s: float, error: str) -> None:
        logger.info("attempt failed, retry in {:.2f}s: {}", delay_s, error)

    def dead(self, task: Task, reason: str, error: str) -> None:
        logger.warning("task dead ({}): {}", reason, error)


class StatusCache(Middleware):
    """Every committed transition refreshes the task's cached status."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def transition_recorded(self, task: Task) -> None:
        self.cache.put_task(task)


def standard_lifecycle(cache: Cache) -> Lifecycle:
    """Metrics, log lines and the status cache: what every process records per transition."""
    return Lifecycle([RunMetrics(), RunLogs(), StatusCache(cache)])
