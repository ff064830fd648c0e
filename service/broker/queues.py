"""What the broker says of a queue over AMQP: messages ready and consumers (a passive declare).

Unacknowledged deliveries are not in that answer; the workers report theirs in their
heartbeats (``unacked``), which ``orchestrator stats`` adds up per queue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractConnection
from aiormq.exceptions import ChannelNotFoundEntity


@dataclass(frozen=True)
class QueueDepth:
    ready: int
    consumers: int


async def queue_depths(connection: AbstractConnection,
                       queue_names: Iterable[str]) -> dict[str, QueueDepth]:
    """Each declared queue's depth; a queue that does not exist is left out (a passive declare
    of it closes its channel, so each queue gets a channel of its own)."""
    depths: dict[str, QueueDepth] = {}
    for name in queue_names:
        channel = await connection.channel(publisher_confirms=False)
        try:
            queue = await channel.declare_queue(name, passive=True)
            result: Any = queue.declaration_result
            depths[name] = QueueDepth(int(result.message_count), int(result.consumer_count))
        except ChannelNotFoundEntity:
            continue
        finally:
            if not channel.is_closed:
                await channel.close()
    return depths
