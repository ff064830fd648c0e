"""The agent worker process: wiring, consuming, cooperative cancel and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from contextlib import AsyncExitStack

import httpx
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from loguru import logger

from agents.registry import known_agents, load_agent_modules
from service.broker.messages import MalformedMessage, decode_control
from service.broker.topology import Topology
from service.db.runs import RunStore
from service.db.workers import WorkerRegistry
from service.errors import PortUnavailable
from service.lifecycle import zero_agent_counters, zero_model_counters
from service.periodic import Periodic
from service.pricing import parse_prices
from service.resources import open_resources
from service.settings import Settings
from service.streams import TaskStreams
from service.telemetry.exposition import mark_build, serve_agent_metrics
from service.worker.capacity import parse_concurrency
from service.worker.executor import TaskExecutor
from service.worker.flow import LEASE_S, FlowControl, resolve_limits
from service.worker.heartbeat import Heartbeat
from service.worker.slots import check_lower_share

AGENT_TAKEOVER_S = 5.0
"""An agent's outbox relay publishes new submissions only once they have waited this long."""
LOOP_TICK_S = 1.0
LOOP_STALLED_S = 30.0
"""``/health/live`` fails once the event loop has not ticked for this long (a blocked loop
runs no task and renews no lease: restarting the process is the cure)."""


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _by_agent(numbers: dict[str, int]) -> str:
    return ",".join(f"{agent}={n}" for agent, n in numbers.items())


class Worker:
    """Consumes the queues of some agent types until stopped."""

    def __init__(self, settings: Settings, agents: list[str] | None = None,
                 worker_id: str | None = None) -> None:
        load_agent_modules(settings.worker.agent_modules)
        chosen = agents or list(settings.worker.agents) or known_agents()
        unknown = sorted(set(chosen) - set(known_agents()))
        if unknown:
            raise ValueError(f"unknown agents {unknown}; known agents: {known_agents()}")
        check_lower_share(settings.worker.priority_lower_share)
        self.limits = resolve_limits(chosen, settings.worker.agent_limits)
        self.concurrency = parse_concurrency(settings.worker.concurrency, chosen, known_agents())
        parse_prices(settings.llm.prices)  # a bad price table fails the start, naming it
        self.settings = settings
        self.agents = chosen
        self.worker_id = worker_id or new_worker_id()
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._stopped = asyncio.Event()
        self._ticked = time.monotonic()

    async def start(self) -> None:
        """Open everything and start consuming; on any failure, close what was opened."""
        self._resources = AsyncExitStack()
        try:
            await self._open(self._resources)
        except BaseException:
            await self._resources.aclose()
            raise

    async def _open(self, resources: AsyncExitStack) -> None:
        s = self.settings
        if s.telemetry.metrics_enabled:  # first: a busy port fails before anything else is opened
            try:
                server = serve_agent_metrics(s.telemetry.metrics_host, s.worker.metrics_port,
                                             {"live": self.live, "ready": self.ready})
            except OSError as exc:
                raise PortUnavailable("agent metrics", s.telemetry.metrics_host,
                                      s.worker.metrics_port,
                                      "pass --metrics-port with a free port (0 picks one)",
                                      exc) from exc
            resources.callback(server.shutdown)
            self.metrics_port = server.server_port
            logger.info("agent metrics on http://{}:{}/metrics", s.telemetry.metrics_host,
                        self.metrics_port)
        ticker = Periodic("event loop tick", LOOP_TICK_S, self._tick)
        ticker.start()
        resources.push_async_callback(ticker.stop)
        resources.callback(self._cancel_handlers)  # runs after the connection is closed
        shared = await resources.enter_async_context(open_resources(
            s, f"agent {self.worker_id}", actor=self.worker_id,
            new_tasks_after_s=AGENT_TAKEOVER_S, probe_slots=self._slots))
        self.pool, self.cache, self.connection = shared.pool, shared.cache, shared.amqp
        flow = None
        if any(limits.any for limits in self.limits.values()):
            flow = FlowControl(self.cache.client, self.cache.keys, self.limits)
            renewal = Periodic("flow lease renewal", LEASE_S / 3, flow.renew)
            renewal.start()
            resources.push_async_callback(renewal.stop)
        llm_client = httpx.AsyncClient(timeout=s.llm.timeout_s)  # one per process
        resources.push_async_callback(llm_client.aclose)
        self.executor = TaskExecutor(RunStore(self.pool, self.worker_id), self.cache,
                                     concurrency=self.concurrency, tasks=s.tasks, llm=s.llm,
                                     on_outbox_change=shared.relay.wake,
                                     max_json_depth=s.api.max_json_depth,
                                     lower_band_share=s.worker.priority_lower_share,
                                     flow=flow, llm_client=llm_client,
                                     streams=TaskStreams.of(self.cache, s))
        self.consume_channel = await self.connection.channel()
        topology = Topology(self.connection, self.consume_channel, s.broker)
        await topology.declare_core()
        cancel_watch = asyncio.create_task(self.executor.watch_cancellations(),
                                           name="cancel-watch")
        resources.callback(cancel_watch.cancel)
        heartbeat = Heartbeat(
            self.worker_id, self.agents, sum(self.concurrency.values()), self.cache,
            WorkerRegistry(self.pool),
            lambda: dict(self.executor.unacked), interval_s=s.worker.heartbeat_interval_s,
            ttl_s=s.worker.heartbeat_ttl_s)
        await heartbeat.beat()
        heartbeat.start()
        resources.push_async_callback(heartbeat.stop)
        mark_build("agent")
        zero_agent_counters(self.agents)
        zero_model_counters(self.agents, s.llm.model)
        control = await topology.declare_control_queue(self.worker_id)
        await control.consume(self._on_control, no_ack=True)
        for agent in self.agents:
            queues = await topology.declare_agent_queues(agent)
            # a consumer's prefetch is the one set last before it: deliveries per band enough
            # to fill the type's slots from any one band
            await self.consume_channel.set_qos(prefetch_count=self._prefetch(agent))
            for band, queue in reversed(list(enumerate(queues))):  # highest band first
                tag = await queue.consume(self.executor.consumer(agent, band))
                self._consumers.append((queue, tag))
        for agent, limits in self.limits.items():
            if limits.any:
                logger.info("flow limits of {} (all workers together): {}", agent, limits)
        logger.info("worker {} consuming {} (concurrency {}, prefetch per queue {})",
                    self.worker_id, ",".join(self.agents), _by_agent(self.concurrency),
                    _by_agent({agent: self._prefetch(agent) for agent in self.agents}))

    async def _tick(self) -> None:
        self._ticked = time.monotonic()

    def live(self) -> tuple[bool, str]:
        """The event loop runs (``/health/live``; asked from the metrics thread)."""
        stalled = time.monotonic() - self._ticked
        if stalled > LOOP_STALLED_S:
            return False, f"the event loop has not run for {stalled:.0f} s"
        return True, "the event loop runs"

    def ready(self) -> tuple[bool, str]:
        """Consuming every queue of its agent types over an open connection
        (``/health/ready``); not while starting or stopping."""
        connection = getattr(self, "connection", None)
        if not self._consumers:
            return False, "stopping" if self._stopped.is_set() else "not consuming yet"
        if connection is None or connection.is_closed or not connection.connected.is_set():
            return False, "the RabbitMQ connection is closed (reconnecting)"
        return True, f"consuming {len(self._consumers)} queues"

    def _prefetch(self, agent: str) -> int:
        return self.settings.worker.prefetch or self.concurrency[agent]

    def _cancel_handlers(self) -> None:
        executor = getattr(self, "executor", None)
        for handler in list(executor.handlers if executor else ()):
            handler.cancel()

    async def _on_control(self, message: AbstractIncomingMessage) -> None:
        try:
            task_id = decode_control(message.body).cancel
        except MalformedMessage:
            return
        if self.executor.request_cancel(task_id):
            logger.bind(task_id=task_id).info("cooperative cancel delivered to the running agent")

    def _slots(self) -> tuple[int, int]:
        executor = getattr(self, "executor", None)  # the probe may sample before it exists
        used = len(executor.running) if executor else 0
        return used, max(0, sum(self.concurrency.values()) - used)

    def request_stop(self) -> None:
        self._stopped.set()

    async def run_until_stopped(self) -> None:
        """Start, serve until SIGTERM/SIGINT, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        await self._stopped.wait()
        await self.stop()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop consuming, give in-flight work ``grace_s`` to finish, leave the rest unacked."""
        grace = self.settings.worker.shutdown_grace_s if grace_s is None else grace_s
        for queue, tag in self._consumers:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
        self._consumers.clear()
        pending = set(self.executor.handlers)
        if pending:
            logger.info("waiting up to {}s for {} in-flight tasks", grace, len(pending))
            _, still = await asyncio.wait(pending, timeout=grace)
            if still:
                logger.warning("{} tasks still running after the grace period; their messages"
                               " stay unacked and will be redelivered", len(still))
        await self._resources.aclose()
        logger.info("worker {} stopped", self.worker_id)
