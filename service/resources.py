"""The resources every orchestrator process holds, opened by one function for the API and the
agent worker alike: the database pool (migrated), the status cache, the broker connection with
a confirming publisher, the outbox relay, the reconciler, the dead-letter consumer and the
telemetry probe. Closed in reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from aio_pika.abc import AbstractRobustConnection

from service.broker.connection import connect
from service.broker.dead_letters import DeadLetterRecorder
from service.broker.publisher import Publisher
from service.broker.reconciler import Reconciler
from service.broker.relay import OutboxRelay
from service.broker.topology import Topology
from service.cache import Cache
from service.db.dead_letters import DeadLetterStore
from service.db.migrate import migrate
from service.db.outbox import OutboxStore
from service.db.pool import Pool, open_pool
from service.db.recovery import RecoveryStore
from service.db.server import ServerStats
from service.db.workers import WorkerRegistry
from service.gauges.disk import DiskGauges, database_is_local, parse_volumes
from service.gauges.probe import Probe
from service.lifecycle import standard_lifecycle
from service.settings import Settings


@dataclass(frozen=True)
class Resources:
    pool: Pool
    cache: Cache
    amqp: AbstractRobustConnection
    publisher: Publisher
    relay: OutboxRelay
    outbox: OutboxStore


@asynccontextmanager
async def open_resources(settings: Settings, name: str, *, actor: str | None = None,
                         new_tasks_after_s: float = 0.0,
                         probe_slots: Callable[[], tuple[int, int]] | None = None,
                         probe_extra: Callable[[], None] | None = None,
                         ) -> AsyncIterator[Resources]:
    """``name`` names the process in PostgreSQL and RabbitMQ, ``actor`` (default: ``name``)
    on the timeline of what its relay publishes; ``new_tasks_after_s`` leaves fresh
    submissions to other relays for that long (see ``OutboxStore``)."""
    async with AsyncExitStack() as stack:
        pool = await open_pool(settings.database, name=name[:60])
        stack.push_async_callback(pool.close)
        await migrate(pool)
        cache = Cache(settings.redis)
        stack.push_async_callback(cache.close)
        amqp = await connect(settings.broker, name)
        stack.push_async_callback(amqp.close)  # unacked messages go back to their queues
        channel = await amqp.channel(publisher_confirms=True)
        topology = Topology(amqp, channel, settings.broker)
        await topology.declare_core()
        publisher = Publisher(topology)
        outbox = OutboxStore(pool, actor or name, new_tasks_after_s=new_tasks_after_s)
        relay = OutboxRelay(outbox, publisher, batch_size=settings.broker.relay_batch_size,
                            poll_interval_s=settings.broker.relay_poll_interval_s)
        relay.start()
        stack.push_async_callback(relay.stop)
        recovery = RecoveryStore(pool, actor or name)
        reconciler = Reconciler(
            recovery, WorkerRegistry(pool), amqp,
            heartbeat_ttl_s=settings.worker.heartbeat_ttl_s,
            interval_s=settings.broker.reconcile_interval_s,
            after_s=settings.broker.reconcile_after_s, on_republished=relay.wake)
        await reconciler.start()
        stack.push_async_callback(reconciler.stop)
        await DeadLetterRecorder(DeadLetterStore(pool), recovery, amqp, standard_lifecycle(cache),
                                 delivery_limit=settings.broker.delivery_limit).start()
        disks = DiskGauges({"state": settings.state_dir,
                            **parse_volumes(settings.telemetry.disk_volumes)})
        if database_is_local(settings.database.url):
            data_directory = await ServerStats(pool).data_directory()
            if data_directory:
                disks.add("database", data_directory)
        probe = Probe(pool, amqp, cache, settings.telemetry.probe_interval_s, slots=probe_slots,
                      extra=probe_extra, disks=disks)
        probe.start()
        stack.push_async_callback(probe.stop)
        yield Resources(pool, cache, amqp, publisher, relay, outbox)
