"""The open-model load generator: requests go out at their scheduled times, not when earlier
ones come back.

The schedule (see :mod:`loadtest.profiles`) fixes every request's intended send time up front.
Each request is a coroutine of its own on a connection from a growing, bounded pool, so a slow
answer never delays the next request; when the pool is exhausted a request waits for a
connection, and that wait is part of its latency, because every latency is measured from the
INTENDED send time (no coordinated omission). The run is bounded by a request count and/or a
duration, then waits (bounded) for the outstanding answers and for the accepted tasks to finish.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from loadtest.pool import ConnectionPool
from loadtest.profiles import Profile, schedule
from loadtest.progress import Progress
from loadtest.stats import BAD_RESPONSE, CONNECTION_ERROR, TIMEOUT, RunStats
from loadtest.tracker import CompletionTracker
from loadtest.workload import Workload

_LEAD_S = 0.05
"""The first request is due this long after the run starts (time to set up the tasks)."""


@dataclass
class LoadConfig:
    """One run."""

    url: str
    api_key: str
    profile: Profile
    workload: Workload
    queue_wait_target_s: float | None
    duration_s: float | None = 60.0
    max_requests: int | None = None
    max_connections: int = 256
    request_timeout_s: float = 10.0
    drain_timeout_s: float = 60.0
    pollers: int = 8
    track_fraction: float = 1.0
    """Share of the accepted tasks followed to their final state (polling costs the API a
    ``GET`` per task; below 1, the task SLOs are judged on an evenly spread sample)."""
    progress: bool = True

    def describe(self) -> dict[str, Any]:
        return {"url": self.url, "profile": self.profile.describe(),
                "duration_s": self.duration_s, "max_requests": self.max_requests,
                "mix": self.workload.mix, "payload_bytes": self.workload.payload_bytes,
                "max_attempts": self.workload.max_attempts, "timeout_s": self.workload.timeout_s,
                "max_connections": self.max_connections,
                "request_timeout_s": self.request_timeout_s,
                "drain_timeout_s": self.drain_timeout_s, "pollers": self.pollers,
                "track_fraction": self.track_fraction,
                "queue_wait_target_s": self.queue_wait_target_s}


@dataclass
class RunResult:
    """A finished run: its measurements and when it happened."""

    config: LoadConfig
    stats: RunStats
    started_wall: float
    """Unix time of the run's time 0."""
    sending_s: float
    """Seconds from time 0 until the last answer came back (or was given up)."""
    elapsed_s: float
    """Seconds from time 0 until the last task was final (or the drain timed out)."""
    pool_peak: int
    pool_opened: int
    pool_waits: int
    polls: int
    abandoned: int
    """Requests still unanswered when the run stopped waiting (counted as timeouts too)."""


class LoadGenerator:
    """Sends one run's requests and follows its tasks."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.stats = RunStats(config.queue_wait_target_s)
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self.pool = ConnectionPool(config.url, headers, config.max_connections)
        self._start = 0.0
        self.tracker = CompletionTracker(config.url, headers, self.stats, self.clock,
                                         pollers=config.pollers,
                                         request_timeout_s=config.request_timeout_s)
        self._requests: set[asyncio.Task[None]] = set()

    def clock(self) -> float:
        """Seconds since the run's time 0 (monotonic)."""
        return time.monotonic() - self._start

    async def run(self) -> RunResult:
        cfg = self.config
        self._start = time.monotonic() + _LEAD_S
        started_wall = time.time() + _LEAD_S
        progress = Progress(self.stats, self.clock, cfg.profile.rate_at,
                            lambda: len(self._requests), lambda: self.tracker.pending,
                            enabled=cfg.progress)
        ticker = asyncio.create_task(progress.run(), name="progress")
        self.tracker.start()
        try:
            await self._send_all()
            abandoned = await self._await_answers()
            sending_s = self.clock()
            progress.phase = "drain"
            await self.tracker.drain(cfg.drain_timeout_s)
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await self.tracker.stop()
            await self.pool.close()
        return RunResult(config=cfg, stats=self.stats, started_wall=started_wall,
                         sending_s=sending_s, elapsed_s=self.clock(),
                         pool_peak=self.pool.peak, pool_opened=self.pool.opened,
                         pool_waits=self.pool.waits, polls=self.tracker.polls,
                         abandoned=abandoned)

    async def _send_all(self) -> None:
        cfg = self.config
        for seq, intended in enumerate(schedule(cfg.profile, cfg.duration_s, cfg.max_requests)):
            delay = intended - self.clock()
            if delay <= 0 and seq % 64 == 0:
                await asyncio.sleep(0)  # behind schedule: still let answers in
            while delay > 0:  # timers may fire a little early: never send before the time
                await asyncio.sleep(delay)
                delay = intended - self.clock()
            agent, body = cfg.workload.body(seq)
            self.stats.record_send(agent, intended, self.clock())
            fraction = cfg.track_fraction  # an evenly spread sample: every 1/fraction-th
            track = math.floor((seq + 1) * fraction) > math.floor(seq * fraction)
            request = asyncio.create_task(self._submit(agent, body, intended, track))
            self._requests.add(request)
            request.add_done_callback(self._requests.discard)

    async def _await_answers(self) -> int:
        """Wait for the outstanding answers (bounded); give up on the rest."""
        if not self._requests:
            return 0
        grace = self.config.request_timeout_s + 5.0
        _, pending = await asyncio.wait(set(self._requests), timeout=grace)
        for request in pending:
            request.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)

    async def _submit(self, agent: str, body: bytes, intended: float, track: bool) -> None:
        """One ``POST /v1/tasks``; its latency counts from ``intended``."""
        conn = None
        try:
            conn = await self.pool.acquire()
            written = self.clock()
            status, payload = await asyncio.wait_for(conn.request("POST", "/v1/tasks", body),
                                                     self.config.request_timeout_s)
        except TimeoutError:
            await self._discard(conn)
            self.stats.record_failure(TIMEOUT, self.clock())
            return
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            await self._discard(conn)
            self.stats.record_failure(CONNECTION_ERROR, self.clock())
            return
        except asyncio.CancelledError:
            await self._discard(conn)
            self.stats.record_failure(TIMEOUT, self.clock())
            raise
        self.pool.release(conn)
        self.stats.record_answer(agent, intended, self.clock(), status)
        if status == 202 and track:
            try:
                task_id = str(json.loads(payload)["id"])
            except (ValueError, KeyError, TypeError):
                self.stats.errors[BAD_RESPONSE] += 1
                return
            self.stats.tracked += 1
            self.tracker.add(task_id, agent, intended, written - intended)

    async def _discard(self, conn: Any) -> None:
        if conn is not None:
            await self.pool.discard(conn)


async def run_load(config: LoadConfig) -> RunResult:
    """Run the load described by ``config`` and return what it measured."""
    return await LoadGenerator(config).run()
