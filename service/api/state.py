"""The API process's resources, opened in the lifespan and closed in ``finally``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from aio_pika.abc import AbstractRobustConnection
from litestar import Litestar
from prometheus_client import CollectorRegistry

from agents.registry import load_agent_modules
from catalog import metrics
from service.api.auth import KeyCache
from service.api.draining import drain_on_exit_signals
from service.api.limits import TenantLimits
from service.api.schemas import TaskOut
from service.broker.publisher import Publisher
from service.broker.relay import OutboxRelay
from service.cache import Cache
from service.callbacks import CallbackDispatcher
from service.db.callbacks import CallbackStore
from service.db.keys import KeyStore
from service.db.pool import Pool
from service.db.retention import RetentionJob, RetentionStore
from service.db.schedules import ScheduleStore
from service.db.task_stats import TaskStats
from service.db.tasks import TaskStore
from service.db.workers import WorkerRegistry
from service.gauges.sampler import StateSampler
from service.lifecycle import zero_agent_counters
from service.periodic import Periodic
from service.resources import open_resources
from service.retention import RetentionPolicy
from service.scheduler import Scheduler
from service.settings import Settings
from service.streams import TaskStreams
from service.telemetry.exposition import api_registry, mark_build
from service.telemetry.http import flush_http_metrics
from service.telemetry.tracing import shutdown_tracing


@dataclass
class Services:
    """Everything a request handler may use, in one object on ``app.state.services``."""

    settings: Settings
    pool: Pool
    amqp: AbstractRobustConnection
    cache: Cache
    tasks: TaskStore
    keys: KeyCache
    workers: WorkerRegistry
    publisher: Publisher
    relay: OutboxRelay
    agents: list[str]
    sampler: StateSampler
    registry: CollectorRegistry
    limits: TenantLimits
    schedules: ScheduleStore
    streams: TaskStreams
    callbacks: CallbackStore


@asynccontextmanager
async def open_services(settings: Settings, name: str = "api") -> AsyncIterator[Services]:
    """The process's resources (``open_resources``), the agent queues declared, and what the
    handlers and ``/metrics`` read besides."""
    agents = load_agent_modules(settings.worker.agent_modules)
    async with open_resources(settings, name, probe_extra=flush_http_metrics) as resources:
        pool, amqp = resources.pool, resources.amqp
        for agent in agents:
            await resources.publisher.topology.declare_agent_queues(agent)
        workers = WorkerRegistry(pool)
        sampler = StateSampler(TaskStats(pool), resources.outbox, workers, amqp, agents,
                               settings.worker.heartbeat_ttl_s, settings.telemetry.metrics_cache_s,
                               settings.worker.deployed_agents, cache=resources.cache)
        mark_build("api")
        zero_agent_counters(agents)
        for outcome in metrics.CALLBACK_OUTCOMES:
            metrics.CALLBACKS.labels(outcome)
        tasks = settings.tasks
        retention = RetentionJob(RetentionStore(pool), RetentionPolicy.of(tasks),
                                 tasks.retention_interval_s, tasks.retention_batch)
        retention.start()
        schedules = ScheduleStore(pool)
        scheduler = Scheduler(schedules, interval_s=tasks.schedule_interval_s,
                              grace_s=tasks.schedule_grace_s, on_fired=resources.relay.wake)
        scheduler.start()
        counts = Periodic("task counts", tasks.count_fold_interval_s, TaskStats(pool).fold_counts)
        counts.start()
        callbacks = CallbackStore(pool)
        dispatcher = CallbackDispatcher(callbacks, settings.callbacks, show=TaskOut.of,
                                        recorded=resources.cache.put_task)
        dispatcher.start()
        try:
            await resources.cache.ping()
            yield Services(settings, pool, amqp, resources.cache,
                           TaskStore(pool, settings.tasks.idempotency_ttl_s),
                           KeyCache(KeyStore(pool), settings.api.key_cache_ttl_s), workers,
                           resources.publisher, resources.relay, agents, sampler,
                           api_registry([sampler], settings.api.workers),
                           TenantLimits(settings.limits, resources.cache, TaskStats(pool)),
                           schedules, TaskStreams.of(resources.cache, settings), callbacks)
        finally:
            await dispatcher.stop()
            await counts.stop()
            await scheduler.stop()
            await retention.stop()
            shutdown_tracing()


def services_lifespan(
        settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A Litestar lifespan that puts :class:`Services` on ``app.state.services``."""
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            restore_signals = drain_on_exit_signals()
            try:
                yield
            finally:
                restore_signals()
    return lifespan
