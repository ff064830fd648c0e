"""The API process's resources, opened in the lifespan and closed in ``finally``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from aio_pika.abc import AbstractRobustConnection
from litestar import Litestar

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
from service.db.tasks import TaskStore
from service.db.workers import WorkerRegistry
from service.settings import Settings


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


@asynccontextmanager
async def open_services(settings: Settings, name: str = "api") -> AsyncIterator[Services]:
    """Open the pool, the broker connection and the cache; start the outbox relay."""
    agents = load_agent_modules(settings.agent_modules)
    pool = await open_pool(settings, name=name)
    amqp: AbstractRobustConnection | None = None
    cache = Cache(settings)
    relay: OutboxRelay | None = None
    try:
        await migrate(pool)
        amqp = await connect(settings, name)
        channel = await amqp.channel(publisher_confirms=True)
        topology = Topology(channel, settings.delivery_limit)
        await topology.declare_core()
        for agent in agents:
            await topology.declare_agent_queue(agent)
        publisher = Publisher(topology)
        relay = OutboxRelay(OutboxStore(pool, name), publisher,
                            batch_size=settings.relay_batch_size,
                            poll_interval_s=settings.relay_poll_interval_s)
        relay.start()
        await cache.ping()
        yield Services(settings, pool, amqp, cache, TaskStore(pool), KeyCache(KeyStore(pool)),
                       WorkerRegistry(pool), publisher, relay, agents)
    finally:
        if relay is not None:
            await relay.stop()
        if amqp is not None:
            await amqp.close()
        await cache.close()
        await pool.close()


def services_lifespan(
        settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A Litestar lifespan that puts :class:`Services` on ``app.state.services``."""
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            yield
    return lifespan
