"""The API process's resources, opened in the lifespan and closed in ``finally``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from aio_pika.abc import AbstractRobustConnection
from litestar import Litestar
from prometheus_client import CollectorRegistry

from agents.registry import load_agent_modules
from service.api.auth import KeyCache
from service.broker.connection import connect
from service.broker.publisher import Publisher
from service.broker.relay import OutboxRelay
from service.broker.topology import Topology
from service.cache import Cache
from service.db.keys import KeyStore
from service.db.migrate import migrate
from service.db.outbox import OutboxStore
from service.db.pool import Pool, open_pool
from service.db.task_stats import TaskStats
from service.db.tasks import TaskStore
from service.db.workers import WorkerRegistry
from service.settings import Settings
from service.telemetry.exposition import api_registry, mark_build
from service.telemetry.http import flush_http_metrics
from service.telemetry.probe import Probe
from service.telemetry.sampler import StateSampler
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


@asynccontextmanager
async def open_services(settings: Settings, name: str = "api") -> AsyncIterator[Services]:
    """Open the pool, the broker connection and the cache; start the outbox relay and the
    telemetry probe. Everything opened is closed again, in reverse order."""
    agents = load_agent_modules(settings.agent_modules)
    async with AsyncExitStack() as stack:
        pool = await open_pool(settings, name=name)
        stack.push_async_callback(pool.close)
        cache = Cache(settings)
        stack.push_async_callback(cache.close)
        await migrate(pool)
        amqp = await connect(settings, name)
        stack.push_async_callback(amqp.close)
        channel = await amqp.channel(publisher_confirms=True)
        topology = Topology(channel, settings.delivery_limit)
        await topology.declare_core()
        for agent in agents:
            await topology.declare_agent_queue(agent)
        publisher = Publisher(topology)
        outbox = OutboxStore(pool, name)
        relay = OutboxRelay(outbox, publisher, batch_size=settings.relay_batch_size,
                            poll_interval_s=settings.relay_poll_interval_s)
        relay.start()
        stack.push_async_callback(relay.stop)
        workers = WorkerRegistry(pool)
        sampler = StateSampler(TaskStats(pool), outbox, workers, amqp, agents,
                               settings.heartbeat_ttl_s, settings.metrics_cache_s,
                               settings.deployed_agents)
        probe = Probe(pool, amqp, cache, settings.probe_interval_s, extra=flush_http_metrics)
        probe.start()
        stack.push_async_callback(probe.stop)
        mark_build("api")
        stack.callback(shutdown_tracing)
        await cache.ping()
        yield Services(settings, pool, amqp, cache, TaskStore(pool), KeyCache(KeyStore(pool)),
                       workers, publisher, relay, agents, sampler,
                       api_registry([sampler], settings.api_workers))


def services_lifespan(
        settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A Litestar lifespan that puts :class:`Services` on ``app.state.services``."""
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            yield
    return lifespan
