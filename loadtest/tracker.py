"""Follows accepted tasks to their final state with a bounded number of pollers.

Each task is polled with ``GET /v1/tasks/{id}`` (the API answers from its Redis status cache):
first after about the median end-to-end time seen so far, then with a growing interval up to
``max_interval_s``. The latencies come from the task's own timestamps once it is final, so the
polling interval changes how much the tracker costs the API, never what it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from loadtest.pool import ConnectionPool
from loadtest.stats import POLL_ERROR, RunStats

FINAL = frozenset({"succeeded", "dead", "cancelled"})


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    task_id: str = field(compare=False)
    agent: str = field(compare=False)
    intended_s: float = field(compare=False)
    send_offset_s: float = field(compare=False)
    interval_s: float = field(compare=False)
    started: bool = field(default=False, compare=False)


class CompletionTracker:
    """Polls every added task until it is final (or the tracker is stopped)."""

    def __init__(self, url: str, headers: dict[str, str], stats: RunStats,
                 clock: Callable[[], float], pollers: int = 8, request_timeout_s: float = 10.0,
                 first_poll_s: float = 0.05, max_interval_s: float = 1.0) -> None:
        self.stats = stats
        self.clock = clock
        """Seconds since the start of the run."""
        self.pool = ConnectionPool(url, headers, max_size=pollers)
        self.pollers = pollers
        self.request_timeout_s = request_timeout_s
        self.first_poll_s = first_poll_s
        self.max_interval_s = max_interval_s
        self.polls = 0
        self._heap: list[_Pending] = []
        self._seq = 0
        self._in_poll = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._all_final = asyncio.Event()

    @property
    def pending(self) -> int:
        """Tasks not final yet."""
        return len(self._heap) + self._in_poll

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._poller(), name=f"poller-{i}")
                       for i in range(self.pollers)]

    def add(self, task_id: str, agent: str, intended_s: float, send_offset_s: float) -> None:
        """Follow an accepted task; ``send_offset_s`` is intended send to request written."""
        median = self.stats.end_to_end.percentile(0.5)
        first = min(max(self.first_poll_s, median or 0.0), self.max_interval_s)
        self._seq += 1
        self._all_final.clear()
        heapq.heappush(self._heap, _Pending(self.clock() + first, self._seq, task_id, agent,
                                            intended_s, send_offset_s, first))

    async def drain(self, timeout_s: float) -> None:
        """Wait until every task is final or ``timeout_s`` passes, then stop polling; tasks
        still open are recorded as unfinished."""
        if self.pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_final.wait(), timeout_s)
        await self.stop()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        now = self.clock()
        for item in self._heap:
            self.stats.record_unfinished(item.agent, item.started,
                                         now - item.intended_s - item.send_offset_s)
        self._heap.clear()
        await self.pool.close()

    async def _poller(self) -> None:
        while True:
            if not self._heap or self._heap[0].due > self.clock():
                wait = self._heap[0].due - self.clock() if self._heap else 0.05
                await asyncio.sleep(min(max(wait, 0.001), 0.05))
                continue
            item = heapq.heappop(self._heap)
            self._in_poll += 1
            try:
                task = await self._get(item.task_id)
            except asyncio.CancelledError:
                heapq.heappush(self._heap, item)  # stopped mid-poll: still unfinished
                raise
            finally:
                self._in_poll -= 1
            if task is not None and task.get("status") in FINAL:
                self.stats.record_final(item.agent, item.intended_s, item.send_offset_s, task)
                if not self.pending:
                    self._all_final.set()
                continue
            if task is not None:
                item.started = task.get("started_at") is not None
            item.interval_s = min(item.interval_s * 1.5, self.max_interval_s)
            item.due = self.clock() + item.interval_s
            heapq.heappush(self._heap, item)

    async def _get(self, task_id: str) -> dict[str, object] | None:
        """The task as the API returns it; None (and a ``poll_error``) when that fails."""
        self.polls += 1
        conn = await self.pool.acquire()
        try:
            status, body = await asyncio.wait_for(conn.request("GET", f"/v1/tasks/{task_id}"),
                                                  self.request_timeout_s)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            await self.pool.discard(conn)
            self.stats.errors[POLL_ERROR] += 1
            return None
        except asyncio.CancelledError:
            await self.pool.discard(conn)
            raise
        self.pool.release(conn)
        if status != 200:
            self.stats.errors[POLL_ERROR] += 1
            return None
        data = json.loads(body)
        return data if isinstance(data, dict) else None
