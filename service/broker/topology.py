"""The RabbitMQ topology, declared in code (idempotent: every process declares what it uses).

    orch.tasks (direct) --agent[.band]--> orch.agent.<agent>[.band] (quorum, delivery limit)
        --DLX--> orch.dead                      (one queue per priority band: catalog.priorities)
    orch.delay (headers) --orch-delay-ms--> orch.delay.<N>ms.quorum (TTL N) --DLX--> orch.tasks
    orch.dead (fanout) --> orch.dead-letter
    orch.control (fanout) --> orch.control.<worker> (exclusive)

Every queue a task's message can be in is a quorum queue, replicated on
``ORCH_QUORUM_GROUP_SIZE`` nodes, so it survives the loss of a node, and dead-letters
at-least-once (a message leaves for the dead-letter exchange only once the target confirmed
it), so a retry or a poison message is never dropped on the way.
"""

from __future__ import annotations

import bisect
import contextlib
from typing import Any

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue
from aio_pika.exceptions import ChannelClosed
from loguru import logger

from catalog import names
from catalog.priorities import BANDS
from service.settings import BrokerSettings

# Retry delays are rounded down to one of these steps: powers of sqrt(2) around one second
# (125 ms .. 48 min; 1, 2, 4, 8 s are exact). Each step is its own queue with a queue-level TTL,
# so messages expire in order and none waits behind a longer one.
DELAY_STEPS_MS: tuple[int, ...] = tuple(round(1000 * 2 ** (k / 2)) for k in range(-6, 24))
LONGEST_DELAY_S = DELAY_STEPS_MS[-1] / 1000
AT_LEAST_ONCE = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
"""Dead-lettering that keeps a message until the dead-letter target has it (quorum queues,
RabbitMQ 3.10+; the strategy needs ``reject-publish``)."""
CREATION_ONLY = ("x-quorum-initial-group-size", *AT_LEAST_ONCE)
"""Arguments a queue gets when it is created: a queue an earlier release created without them
is used as it is (a warning says how a policy gives it the dead-lettering)."""


def delay_step_ms(delay_s: float) -> int:
    """The largest delay step not above ``delay_s`` (at least the smallest step)."""
    wanted = int(delay_s * 1000)
    index = bisect.bisect_right(DELAY_STEPS_MS, wanted) - 1
    return DELAY_STEPS_MS[max(index, 0)]


class Topology:
    """Declares exchanges and queues on one channel and remembers what it declared."""

    def __init__(self, connection: AbstractConnection, channel: AbstractChannel,
                 broker: BrokerSettings) -> None:
        self.connection = connection
        self.channel = channel
        self.delivery_limit = broker.delivery_limit
        self.group_size = broker.quorum_group_size
        self.exchanges: dict[str, AbstractExchange] = {}
        self._delay_queues: set[int] = set()

    async def declare_core(self) -> None:
        """Exchanges plus the dead-letter queue."""
        ch = self.channel
        self.exchanges[names.WORK_EXCHANGE] = await ch.declare_exchange(
            names.WORK_EXCHANGE, ExchangeType.DIRECT, durable=True)
        self.exchanges[names.DELAY_EXCHANGE] = await ch.declare_exchange(
            names.DELAY_EXCHANGE, ExchangeType.HEADERS, durable=True)
        self.exchanges[names.DEAD_EXCHANGE] = await ch.declare_exchange(
            names.DEAD_EXCHANGE, ExchangeType.FANOUT, durable=True)
        self.exchanges[names.CONTROL_EXCHANGE] = await ch.declare_exchange(
            names.CONTROL_EXCHANGE, ExchangeType.FANOUT, durable=True)
        # No delivery limit here, on purpose: past it a message would be dropped (the queue has
        # no dead-letter exchange of its own); its consumer acks each once PostgreSQL holds it.
        dead = await self._quorum_queue(names.DEAD_LETTER_QUEUE, {})
        await dead.bind(self.exchanges[names.DEAD_EXCHANGE])

    async def declare_agent_queues(self, agent: str) -> list[AbstractQueue]:
        """The agent type's quorum queues, one per priority band, lowest first; poison
        messages past the delivery limit go dead."""
        queues = []
        for band in range(len(BANDS)):
            queue = await self._quorum_queue(names.agent_queue(agent, band), {
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": names.DEAD_EXCHANGE, **AT_LEAST_ONCE})
            await queue.bind(self.exchanges[names.WORK_EXCHANGE],
                             routing_key=names.routing_key(agent, band))
            queues.append(queue)
        return queues

    async def declare_delay_queue(self, step_ms: int) -> None:
        """Declare the delay queue for ``step_ms`` once per process (and retire the classic
        queue an earlier release kept that step in)."""
        if step_ms in self._delay_queues:
            return
        queue = await self._quorum_queue(names.delay_queue(step_ms), {
            "x-message-ttl": step_ms, "x-dead-letter-exchange": names.WORK_EXCHANGE,
            **AT_LEAST_ONCE})
        await queue.bind(self.exchanges[names.DELAY_EXCHANGE], arguments=_step_match(step_ms))
        await self._retire_legacy_delay_queue(step_ms)
        self._delay_queues.add(step_ms)

    async def declare_control_queue(self, worker_id: str) -> AbstractQueue:
        queue = await self.channel.declare_queue(names.control_queue(worker_id), exclusive=True,
                                                 auto_delete=True)
        await queue.bind(self.exchanges[names.CONTROL_EXCHANGE])
        return queue

    async def _quorum_queue(self, name: str, arguments: dict[str, Any]) -> AbstractQueue:
        """Declare a quorum queue with ``arguments`` and the replication factor; one that
        exists without the creation-only arguments is taken as it is (tried on a channel of
        its own: a refused declaration closes the channel it was made on)."""
        wanted = {"x-queue-type": "quorum", "x-quorum-initial-group-size": self.group_size,
                  **arguments}
        refused = await self._refusal(name, wanted)
        if refused is not None and any(f"'{arg}'" in refused for arg in CREATION_ONLY):
            wanted = {k: v for k, v in wanted.items() if k not in CREATION_ONLY}
            logger.warning(
                "queue {} was created by an earlier release: it keeps its members and"
                " dead-letters at most once; a policy gives it at-least-once: rabbitmqctl"
                " set_policy orch-at-least-once '^orch\\.' '{{\"dead-letter-strategy\":"
                "\"at-least-once\",\"overflow\":\"reject-publish\"}}' --apply-to quorum_queues",
                name)
        return await self.channel.declare_queue(name, durable=True, arguments=wanted)

    async def _refusal(self, name: str, arguments: dict[str, Any]) -> str | None:
        """Why the broker refuses to declare ``name`` with ``arguments`` (``None``: it does
        not)."""
        probe = await self.connection.channel(publisher_confirms=False)
        try:
            await probe.declare_queue(name, durable=True, arguments=arguments)
        except ChannelClosed as exc:
            return str(exc)
        finally:
            with contextlib.suppress(Exception):
                await probe.close()
        return None

    async def _retire_legacy_delay_queue(self, step_ms: int) -> None:
        """Unbind the classic queue of an earlier release (its messages still expire into the
        work exchange) and delete it once empty; absent, nothing happens."""
        legacy = names.legacy_delay_queue(step_ms)
        probe = await self.connection.channel(publisher_confirms=False)
        try:
            queue = await probe.get_queue(legacy, ensure=True)
            await queue.unbind(names.DELAY_EXCHANGE, arguments=_step_match(step_ms))
            await queue.delete(if_unused=False, if_empty=True)
            logger.info("retired the classic delay queue {}", legacy)
        except ChannelClosed:
            pass  # absent (404), or messages still in it (406): deleted by a later start
        finally:
            with contextlib.suppress(Exception):
                await probe.close()


def _step_match(step_ms: int) -> dict[str, Any]:
    return {"x-match": "all", names.DELAY_HEADER: step_ms}
