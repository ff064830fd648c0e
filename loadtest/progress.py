"""The live progress line: once a second on stderr, what the last second looked like."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TextIO

from loadtest.stats import RunStats


class Progress:
    """Prints (when enabled) and samples the in-flight count into the per-second series."""

    def __init__(self, stats: RunStats, clock: Callable[[], float],
                 target: Callable[[float], float], in_flight: Callable[[], int],
                 open_tasks: Callable[[], int],
                 enabled: bool = True, stream: TextIO | None = None) -> None:
        self.stats = stats
        self.clock = clock
        self.target = target
        self.in_flight = in_flight
        self.open_tasks = open_tasks
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.phase = "load"
        self._last_sent = 0
        self._last_errors = 0

    async def run(self) -> None:
        """Tick every second until cancelled."""
        second = 1
        while True:
            await asyncio.sleep(max(second - self.clock(), 0.0))
            self.tick(second)
            second += 1

    def tick(self, second: int) -> None:
        """Close ``second`` - 1 .. ``second``: sample and print."""
        stats = self.stats
        current = stats.second(second - 1)
        current.in_flight = self.in_flight()
        sent, self._last_sent = stats.sent - self._last_sent, stats.sent
        errors_total = sum(stats.errors.values())
        errors, self._last_errors = errors_total - self._last_errors, errors_total
        if not self.enabled:
            return
        p50, p99 = current.submit.percentile(0.5), current.submit.percentile(0.99)
        target = f" (target {self.target(second - 1):g})" if self.phase == "load" else ""
        line = (f"[{second:>4}s {self.phase}] {sent}/s{target}  sent {stats.sent}"
                f"  ok {stats.accepted}  errors {errors_total} (+{errors})"
                f"  in-flight {current.in_flight}  open tasks {self.open_tasks()}"
                f"  done {stats.finished}  submit p50 {_ms(p50)} p99 {_ms(p99)}")
        print(line, file=self.stream, flush=True)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}ms"
