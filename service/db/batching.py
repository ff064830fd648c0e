"""Group commit: concurrent calls of one statement share a single round trip and commit.

A request goes at once when fewer than ``max_in_flight`` batches are in flight; otherwise it
queues, and when a batch returns, everything that queued goes as the next one. An idle process
therefore adds no latency, a moderately loaded one little (a request seldom waits for a whole
round trip), and a saturated one pays one round trip and one commit for many tasks instead of
one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")


class Batcher(Generic[Request, Result]):
    """Feeds concurrent ``submit`` calls to ``run_batch``, at most ``max_batch`` at a time.

    ``run_batch`` gets the requests in arrival order and returns one result per request, in the
    same order. When it raises, every request of that batch gets the exception (each caller then
    retries or fails on its own, exactly as with a statement of its own), except for exceptions
    of the ``isolate`` types, which point at one bad request: then each request of the batch runs
    alone, so only the bad one fails.
    """

    def __init__(self, run_batch: Callable[[list[Request]], Awaitable[Sequence[Result]]],
                 max_batch: int = 64, max_in_flight: int = 2,
                 isolate: tuple[type[Exception], ...] = ()) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.isolate = isolate
        self._queued: list[tuple[Request, asyncio.Future[Result]]] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._starting = 0  # flushers created that have not taken their first batch yet

    async def submit(self, request: Request) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queued.append((request, future))
        if not self._starting and len(self._flushers) < self.max_in_flight:
            self._starting += 1
            self._flushers.add(asyncio.create_task(self._flush(), name="batcher"))
        return await future

    async def _flush(self) -> None:
        starting = True
        try:
            while self._queued:
                batch = self._queued[:self.max_batch]
                del self._queued[:self.max_batch]
                if starting:
                    self._starting, starting = self._starting - 1, False
                if len(batch) == 1:
                    await self._run_alone(*batch[0])
                    continue
                try:
                    results = await self.run_batch([request for request, _ in batch])
                except self.isolate:
                    for request, future in batch:
                        await self._run_alone(request, future)
                    continue
                except BaseException as exc:
                    for _, future in batch:
                        _settle(future, exc)
                    if not isinstance(exc, Exception):
                        raise  # cancelled: the callers were told, stop flushing
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    _settle(future, result)
        finally:
            # synchronously: a request queued from here on starts a flusher of its own
            if starting:
                self._starting -= 1
            me = asyncio.current_task()
            assert me is not None
            self._flushers.discard(me)
            if not self._flushers:  # requests are left over only when this one was cancelled
                for _, future in self._queued:
                    future.cancel()
                self._queued.clear()

    async def _run_alone(self, request: Request, future: asyncio.Future[Result]) -> None:
        try:
            [result] = await self.run_batch([request])
        except BaseException as exc:
            _settle(future, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            _settle(future, result)


def _settle(future: asyncio.Future[Result], outcome: Result | BaseException) -> None:
    """Give a caller its outcome, unless it stopped waiting (cancelled)."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
