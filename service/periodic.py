"""A pass a process runs every so often for as long as it lives (the retention job, the
scheduler): started once, each failure logged and tried again on the next round, cancelled and
awaited at stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from loguru import logger


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task (if there is one) and wait until it has stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Periodic:
    def __init__(self, name: str, interval_s: float,
                 run_once: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval_s = interval_s
        self.run_once = run_once
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("{} pass failed (tried again in {} s): {}", self.name,
                               self.interval_s, exc)
            await asyncio.sleep(self.interval_s)
