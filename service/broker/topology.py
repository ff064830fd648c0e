"""The RabbitMQ topology, declared in code (idempotent: every process declares what it uses).

    orch.tasks (direct) --agent[.band]--> orch.agent.<agent>[.band] (quorum, delivery limit)
        --DLX--> orch.dead                      (one queue per priority band: catalog.priorities)
    orch.delay (headers) --orch-delay-ms--> orch.delay.<N>ms (TTL N) --DLX--> orch.tasks
    orch.dead (fanout) --> orch.dead-letter
    orch.control (fanout) --> orch.control.<worker> (exclusive)
"""

from __future__ import annotations

import bisect

from aio_pika import ExchangeType
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from catalog import names
from catalog.priorities import BANDS

# Retry delays are rounded down to one of these steps: powers of sqrt(2) around one second
# (125 ms .. 48 min; 1, 2, 4, 8 s are exact). Each step is its own queue with a queue-level TTL,
# so messages expire in order and none waits behind a longer one.
DELAY_STEPS_MS: tuple[int, ...] = tuple(round(1000 * 2 ** (k / 2)) for k in range(-6, 24))
LONGEST_DELAY_S = DELAY_STEPS_MS[-1] / 1000


def delay_step_ms(delay_s: float) -> int:
    """The largest delay step not above ``delay_s`` (at least the smallest step)."""
    wanted = int(delay_s * 1000)
    index = bisect.bisect_right(DELAY_STEPS_MS, wanted) - 1
    return DELAY_STEPS_MS[max(index, 0)]


class Topology:
    """Declares exchanges and queues on one channel and remembers what it declared."""

    def __init__(self, channel: AbstractChannel, delivery_limit: int) -> None:
        self.channel = channel
        self.delivery_limit = delivery_limit
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
        dead = await ch.declare_queue(names.DEAD_LETTER_QUEUE, durable=True,
                                      arguments={"x-queue-type": "quorum"})
        await dead.bind(self.exchanges[names.DEAD_EXCHANGE])

    async def declare_agent_queues(self, agent: str) -> list[AbstractQueue]:
        """The agent type's quorum queues, one per priority band, lowest first; poison
        messages past the delivery limit go dead."""
        queues = []
        for band in range(len(BANDS)):
            queue = await self.channel.declare_queue(
                names.agent_queue(agent, band), durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-delivery-limit": self.delivery_limit,
                    "x-dead-letter-exchange": names.DEAD_EXCHANGE,
                },
            )
            await queue.bind(self.exchanges[names.WORK_EXCHANGE],
                             routing_key=names.routing_key(agent, band))
            queues.append(queue)
        return queues

    async def declare_delay_queue(self, step_ms: int) -> None:
        """Declare the delay queue for ``step_ms`` once per process."""
        if step_ms in self._delay_queues:
            return
        queue = await self.channel.declare_queue(
            names.delay_queue(step_ms), durable=True,
            arguments={"x-message-ttl": step_ms,
                       "x-dead-letter-exchange": names.WORK_EXCHANGE},
        )
        await queue.bind(self.exchanges[names.DELAY_EXCHANGE],
                         arguments={"x-match": "all", names.DELAY_HEADER: step_ms})
        self._delay_queues.add(step_ms)

    async def declare_control_queue(self, worker_id: str) -> AbstractQueue:
        queue = await self.channel.declare_queue(names.control_queue(worker_id), exclusive=True,
                                                 auto_delete=True)
        await queue.bind(self.exchanges[names.CONTROL_EXCHANGE])
        return queue
