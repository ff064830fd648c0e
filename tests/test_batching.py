"""Group commit: concurrent requests share a batch, each gets its own result or the error."""

from __future__ import annotations

import asyncio

import pytest

from service.db.batching import Batcher

pytestmark = pytest.mark.unit


class Recorder:
    """A batch function that records the batches it was given and can be made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail_next: Exception | None = None

    async def run(self, requests: list[int]) -> list[int]:
        self.batches.append(requests)
        await asyncio.sleep(0.01)  # a round trip, during which more requests queue up
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        return [n * 10 for n in requests]


async def test_requests_that_queue_during_a_batch_go_together_in_the_next_one() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run, max_batch=3, max_in_flight=1)
    lone = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.001)  # its batch is in flight
    rest = await asyncio.gather(*(batcher.submit(n) for n in range(1, 5)))
    assert [await lone, *rest] == [n * 10 for n in range(5)]
    assert recorder.batches == [[0], [1, 2, 3], [4]]


async def test_below_the_in_flight_limit_a_request_does_not_wait_for_a_running_batch() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run, max_in_flight=2)
    first = asyncio.ensure_future(batcher.submit(0))
    await asyncio.sleep(0.001)
    second = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.001)
    assert recorder.batches == [[0], [1]] and not first.done()  # went while 0 was in flight
    assert await first == 0 and await second == 10
    # at the limit, the rest queue for the next batch
    results = await asyncio.gather(*(batcher.submit(n) for n in range(2, 8)))
    assert results == [n * 10 for n in range(2, 8)]
    assert recorder.batches[2:] == [[2, 3, 4, 5, 6, 7]]


@pytest.mark.parametrize("max_in_flight", [1, 2])
async def test_a_request_right_after_the_last_batch_returned_is_not_stranded(
        max_in_flight: int) -> None:
    # the caller of the last batch resumes before the flusher's task is reaped: its next
    # request must still start a batch (it used to wait forever when the limit looked reached)
    recorder = Recorder()
    batcher = Batcher(recorder.run, max_in_flight=max_in_flight)
    for n in range(4):
        async with asyncio.timeout(1.0):  # not wait_for: its extra task would hide the race
            assert await batcher.submit(n) == n * 10
    assert recorder.batches == [[0], [1], [2], [3]]


async def test_a_failed_batch_fails_each_of_its_requests_and_the_next_batch_still_runs() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run)
    recorder.fail_next = ConnectionError("database went away")
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    queued = [asyncio.ensure_future(batcher.submit(n)) for n in (2, 3)]
    with pytest.raises(ConnectionError, match="went away"):
        await first
    assert await asyncio.gather(*queued) == [20, 30]


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0)
    cancelled = asyncio.ensure_future(batcher.submit(2))
    kept = asyncio.ensure_future(batcher.submit(3))
    await asyncio.sleep(0)
    cancelled.cancel()
    assert await first == 10 and await kept == 30
    assert cancelled.cancelled()


async def test_an_isolated_error_is_retried_request_by_request_so_only_its_cause_fails() -> None:
    class BadRow(Exception):
        pass

    batches: list[list[int]] = []

    async def run(requests: list[int]) -> list[int]:
        batches.append(requests)
        await asyncio.sleep(0.01)
        if 13 in requests:
            raise BadRow("13 cannot be stored")
        return requests

    batcher = Batcher(run, isolate=(BadRow,))
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.001)
    outcomes = await asyncio.gather(*(batcher.submit(n) for n in (12, 13, 14)),
                                    return_exceptions=True)
    assert await first == 1
    assert outcomes[0] == 12 and outcomes[2] == 14 and isinstance(outcomes[1], BadRow)
    assert batches == [[1], [12, 13, 14], [12], [13], [14]]
