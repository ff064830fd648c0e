"""Priorities hold: a higher band starts before a backlog of lower ones, across all workers of
the agent, and the lower bands still progress (the slots' share)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from agents.registry import agent
from catalog import names
from catalog.priorities import BANDS, HIGHEST, LOWEST, band_of
from service.db.migrate import migrate
from service.db.outbox import OutboxStore
from service.db.pool import Pool, open_pool
from service.db.tasks import NewTask, TaskStore
from service.domain import input_checksum
from service.worker.slots import BandedSlots, check_lower_share
from tests.services import Env, api_client, start_agent, start_api, wait_until

BACKLOG, URGENT = 2000, 20


@pytest.mark.unit
def test_every_priority_has_one_band_and_the_bands_rise_with_it() -> None:
    ranks = [band_of(p) for p in range(LOWEST, HIGHEST + 1)]
    assert ranks == sorted(ranks) and set(ranks) == set(range(len(BANDS)))
    with pytest.raises(ValueError, match="outside 0-9"):
        band_of(10)


@pytest.mark.unit
def test_each_band_has_its_own_queue_that_names_its_agent() -> None:
    queues = names.agent_queues("summarize")
    assert queues[0] == names.agent_queue("summarize") == "orch.agent.summarize"
    assert len(set(queues)) == len(BANDS)
    assert {names.agent_of_queue(q) for q in queues} == {"summarize"}
    assert names.agent_of_queue(names.DEAD_LETTER_QUEUE) == ""


@pytest.mark.unit
def test_an_agent_name_with_a_dot_is_refused() -> None:
    with pytest.raises(ValueError, match="lowercase letters"):
        agent("echo.high")


async def _grant_order(slots: BandedSlots, arrivals: list[int]) -> list[int]:
    """Hold the only slot while ``arrivals`` (bands) queue up, then record who ran in turn."""
    order: list[int] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with slots.hold(0):
            await release.wait()

    async def waiter(band: int) -> None:
        async with slots.hold(band):
            order.append(band)
            await asyncio.sleep(0)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiters = []
    for band in arrivals:
        waiters.append(asyncio.create_task(waiter(band)))
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *waiters)
    return order


@pytest.mark.unit
async def test_a_free_slot_goes_to_the_highest_band_waiting() -> None:
    order = await _grant_order(BandedSlots(1, 3, lower_share=0), [0, 0, 1, 0, 2, 2, 1])
    assert order == [2, 2, 1, 1, 0, 0, 0]


@pytest.mark.unit
async def test_lower_bands_keep_their_share_while_a_higher_one_waits() -> None:
    order = await _grant_order(BandedSlots(1, 3, lower_share=0.25),
                               [0, 0, 0, 0, *[2] * 12])
    # every fourth slot freed while both wait goes to the normal band, oldest first
    assert order == [2, 2, 2, 0] * 4


@pytest.mark.unit
async def test_a_waiter_cancelled_before_its_turn_takes_no_slot() -> None:
    slots = BandedSlots(1, 3, lower_share=0)
    async with slots.hold(0):
        gone = asyncio.create_task(slots._acquire(2))
        await asyncio.sleep(0)
        assert slots.waiting(2) == 1
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert slots.waiting(2) == 0
    assert slots.in_use == 0
    async with slots.hold(1):
        assert slots.in_use == 1


@pytest.mark.unit
def test_a_share_out_of_range_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"ORCH_PRIORITY_LOWER_SHARE=0\.9"):
        check_lower_share(0.9)


@pytest.fixture
async def pool(own_env: Env) -> AsyncIterator[Pool]:
    """A migrated database of the test's own that no relay reads."""
    opened = await open_pool(own_env.settings.database, name="test-priorities")
    await migrate(opened)
    yield opened
    await opened.close()


@pytest.mark.integration
async def test_the_outbox_publishes_higher_priorities_first(pool: Pool) -> None:
    tasks = TaskStore(pool)
    ids = {}
    for priority in (0, 0, 9, 4, 0):
        task, _ = await tasks.submit(NewTask(
            agent="sleep", input=None, tenant="test", priority=priority, max_attempts=1,
            timeout_s=10, checksum=input_checksum(None)))
        ids[task.id] = priority
    async with OutboxStore(pool, "test").batch(10) as batch:
        claimed = [ids[m.task_id] for m in batch.messages]
    assert claimed == [9, 4, 0, 0, 0]


@pytest.mark.integration
async def test_urgent_tasks_start_before_a_backlog_across_all_workers(own_env: Env) -> None:
    """2,000 tasks at priority 0 queued on an agent with 4 slots (two workers of 2, busy with
    the backlog), then 20 at priority 9: each of the 20 starts before another 5% of the
    backlog has, and both workers ran some of them."""
    url = start_api(own_env)
    database = own_env.settings.database.url
    async with api_client(own_env, url, "tasks:write,tasks:read,tasks:priority") as client:
        gate = asyncio.Semaphore(32)

        async def submit(priority: int) -> str:
            async with gate:
                response = await client.post("/v1/tasks", json={
                    "agent": "sleep", "input": {"seconds": 0.05}, "priority": priority})
            assert response.status_code == 202, response.text
            return str(response.json()["id"])

        await asyncio.gather(*(submit(0) for _ in range(BACKLOG)))
        with psycopg.connect(database, autocommit=True) as conn:
            def scalar(sql: str) -> int:
                row = conn.execute(sql).fetchone()
                assert row is not None
                return int(row[0])

            wait_until(lambda: scalar("SELECT count(*) FROM tasks WHERE published_at IS NULL")
                       == 0, 60)
            for _ in range(2):
                start_agent(own_env, "--agents", "sleep",
                            environ=own_env.with_vars(concurrency="2"))
            started = "SELECT count(*) FROM task_events WHERE kind = 'started'"
            wait_until(lambda: scalar(started) >= 50, 60)  # both workers are busy with it
            before = scalar(started)
            urgent = set(await asyncio.gather(*(submit(9) for _ in range(URGENT))))
            wait_until(lambda: scalar("SELECT count(*) FROM tasks WHERE priority = 9"
                                      " AND status = 'succeeded'") == URGENT, 60)
            order = [(str(task_id), worker) for task_id, worker in conn.execute(
                "SELECT task_id, worker_id FROM task_events WHERE kind = 'started'"
                " ORDER BY id OFFSET %s", (before,))]
    assert before < BACKLOG * 0.95  # the backlog is still there
    backlog_started_first = [n - done for done, n in enumerate(
        n for n, (task_id, _) in enumerate(order) if task_id in urgent)]
    assert len(backlog_started_first) == URGENT
    assert max(backlog_started_first) < BACKLOG * 0.05, backlog_started_first
    assert len({worker for task_id, worker in order if task_id in urgent}) == 2
