"""Priority bands: the API's priorities 0-9 mapped to the queues that honour them.

Quorum queues (RabbitMQ 3.x) have no message priorities, so each agent type has one quorum
queue per band; a worker consumes all of them, each with its own prefetch (a band is never
starved of deliveries by a backlog in another), and gives its free slots to the highest band
waiting, keeping a share for the lower ones (``ORCH_PRIORITY_LOWER_SHARE``). Within a band,
tasks run in the order they were published; the outbox publishes higher priorities first.
"""

from __future__ import annotations

from dataclasses import dataclass

LOWEST, HIGHEST = 0, 9
"""The priorities the API accepts."""


@dataclass(frozen=True)
class Band:
    """One band: the priorities it holds and the suffix of its queue and routing key."""

    name: str
    lowest: int
    highest: int
    suffix: str

    def holds(self, priority: int) -> bool:
        return self.lowest <= priority <= self.highest


BANDS: tuple[Band, ...] = (
    Band("normal", 0, 3, ""),
    Band("high", 4, 6, ".high"),
    Band("urgent", 7, 9, ".urgent"),
)
"""Lowest first; the index of a band is its rank (a higher index runs first). The normal band
keeps the plain queue name, so a deployment from before the bands keeps its queue."""


def band_of(priority: int) -> int:
    """The rank of the band that holds ``priority`` (0-9)."""
    for rank, band in enumerate(BANDS):
        if band.holds(priority):
            return rank
    raise ValueError(f"priority {priority} is outside {LOWEST}-{HIGHEST}")
