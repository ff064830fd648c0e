"""The outbox relay: publishes every committed-but-unpublished task, in every process that writes.

Safe with many relays: batches are locked with ``FOR UPDATE SKIP LOCKED``. Woken right after a
local commit (the fast path) and polling on an interval (tasks left by a crashed process or kept
back while the broker was down).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from loguru import logger

from catalog import metrics
from service.broker.publisher import Publisher
from service.db.outbox import OutboxStore
from service.periodic import cancel_and_wait


class OutboxRelay:
    """One relay loop per process."""

    def __init__(self, store: OutboxStore, publisher: Publisher, *, batch_size: int,
                 poll_interval_s: float, publish_timeout_s: float = 5.0) -> None:
        self.store = store
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.publish_timeout_s = publish_timeout_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Ask for a pass now (called after a commit that left something to publish)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def relay_once(self) -> tuple[int, int]:
        """Publish one batch; return ``(published, failed)``."""
        async with self.store.batch(self.batch_size) as batch:
            if not batch.messages:
                return 0, 0
            outcomes = await asyncio.gather(
                *(asyncio.wait_for(self.publisher.publish(m), self.publish_timeout_s)
                  for m in batch.messages),
                return_exceptions=True,
            )
            done = []
            failures: list[BaseException] = []
            for message, outcome in zip(batch.messages, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    failures.append(outcome)
                else:
                    done.append((message.task_id, outcome))
            await batch.mark_published(done)
        if failures:
            logger.warning("outbox relay: {} of {} messages not published: {}", len(failures),
                           len(outcomes), failures[0])
        metrics.OUTBOX_PUBLISHED.inc(len(done))
        if failures:
            metrics.OUTBOX_PUBLISH_FAILURES.inc(len(failures))
        return len(done), len(failures)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            started = time.monotonic()
            try:
                published, failed = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("outbox relay pass failed: {}", exc)
                published, failed = 0, 1
            if published == self.batch_size and not failed:
                continue
            if failed:  # broker trouble: do not spin; wait for the next poll
                await asyncio.sleep(max(0.0, self.poll_interval_s - (time.monotonic() - started)))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
