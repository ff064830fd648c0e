"""A worker's run slots, given highest priority band first with a share kept for the lower ones.

Each band's queue has its own consumer and prefetch, so deliveries of every band wait here for
a slot; whichever band ranks highest among the waiting gets the next free one. So that a steady
stream of urgent work cannot stall the rest for ever, ``lower_share`` of the slots freed while
several bands wait go to the longest-waiting delivery of a lower band instead.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

MAX_LOWER_SHARE = 0.5


def check_lower_share(share: float) -> None:
    """Raise a ``ValueError`` that names the setting when ``share`` is out of range."""
    if not 0 <= share <= MAX_LOWER_SHARE:
        raise ValueError(f"ORCH_PRIORITY_LOWER_SHARE={share}: expected 0 to {MAX_LOWER_SHARE}"
                         " (the share of free slots kept for lower priority bands)")


class BandedSlots:
    """A semaphore of ``size`` slots whose waiters are served by band (higher rank first)."""

    def __init__(self, size: int, bands: int, lower_share: float) -> None:
        check_lower_share(lower_share)
        self.size = size
        self.lower_share = lower_share
        self._free = size
        self._waiting: list[deque[tuple[int, asyncio.Future[None]]]] = [
            deque() for _ in range(bands)]
        self._arrivals = itertools.count()
        self._credit = 0.0

    @property
    def in_use(self) -> int:
        return self.size - self._free

    def waiting(self, band: int) -> int:
        return len(self._waiting[band])

    @asynccontextmanager
    async def hold(self, band: int) -> AsyncIterator[None]:
        """Wait for a slot for a delivery of ``band``; hold it for the block."""
        await self._acquire(band)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, band: int) -> None:
        if self._free > 0 and not any(self._waiting):
            self._free -= 1
            return
        entry = (next(self._arrivals), asyncio.get_running_loop().create_future())
        self._waiting[band].append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry[1].done() and not entry[1].cancelled():
                self._release()  # granted, then cancelled before it ran: pass the slot on
            else:
                self._waiting[band].remove(entry)
            raise

    def _release(self) -> None:
        self._free += 1
        while self._free > 0 and (entry := self._next()) is not None:
            self._free -= 1
            entry[1].set_result(None)

    def _next(self) -> tuple[int, asyncio.Future[None]] | None:
        """The waiter that gets the next slot (taken off its queue), if any waits."""
        ranks = [rank for rank, queue in enumerate(self._waiting) if queue]
        if not ranks:
            return None
        chosen = ranks[-1]
        if len(ranks) > 1:
            self._credit += self.lower_share
            if self._credit >= 1:
                self._credit -= 1
                chosen = min(ranks[:-1], key=lambda rank: self._waiting[rank][0][0])
        return self._waiting[chosen].popleft()
