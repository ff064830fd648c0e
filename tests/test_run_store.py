"""Worker-side transitions against the real PostgreSQL: claims are fenced and idempotent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from service.db.pool import Pool, open_pool
from service.db.query import Row
from service.db.runs import NotClaimed, Run, RunStore, new_run_id
from service.db.tasks import NewTask, TaskStore
from service.domain import Task, input_checksum
from tests.services import Env

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(env: Env, api_url: str) -> AsyncIterator[Pool]:  # api_url: schema migrated
    opened = await open_pool(env.settings.database, name="test-run-store")
    yield opened
    await opened.close()


async def new_task(pool: Pool) -> str:
    task, _ = await TaskStore(pool).submit(NewTask(
        agent="sleep", input={"seconds": 1}, tenant="test", priority=0, max_attempts=3,
        timeout_s=10, checksum=input_checksum({"seconds": 1})))
    return task.id


async def test_a_claim_retried_with_the_same_run_id_is_the_same_claim(pool: Pool) -> None:
    runs = RunStore(pool, "worker-a")
    task_id = await new_task(pool)
    run_id = new_run_id()
    first = await runs.claim(task_id, redelivered=False, run_id=run_id)
    again = await runs.claim(task_id, redelivered=False, run_id=run_id)
    assert isinstance(first, Run) and isinstance(again, Run)
    assert first.task.attempts == again.task.attempts == 1
    assert again.task.status == "running"


async def test_a_second_delivery_of_a_running_task_is_a_duplicate(pool: Pool) -> None:
    task_id = await new_task(pool)
    assert isinstance(await RunStore(pool, "a").claim(task_id, redelivered=False,
                                                      run_id=new_run_id()), Run)
    other = await RunStore(pool, "b").claim(task_id, redelivered=False, run_id=new_run_id())
    assert other == NotClaimed("duplicate", None)


async def test_only_the_run_that_holds_the_task_can_record_its_outcome(pool: Pool) -> None:
    task_id = await new_task(pool)
    stale = await RunStore(pool, "a").claim(task_id, redelivered=False, run_id=new_run_id())
    assert isinstance(stale, Run)
    # the worker holding it is lost; the redelivery is claimed by another worker
    current = await RunStore(pool, "b").claim(task_id, redelivered=True, run_id=new_run_id())
    assert isinstance(current, Run) and current.task.attempts == 2
    assert await RunStore(pool, "a").succeed(stale, '{"late": true}') is None
    done = await RunStore(pool, "b").succeed(current, '{"ok": true}')
    assert done is not None and done.status == "succeeded" and done.result == {"ok": True}


async def test_concurrent_claims_and_results_share_statements_and_each_gets_its_own(
        pool: Pool) -> None:
    runs = RunStore(pool, "worker-batch")
    statements: list[str] = []
    fetch_all = runs.fetch_all

    async def counted(operation: str, sql: str | bytes, params: Any = None) -> list[Row]:
        statements.append(operation)
        return await fetch_all(operation, sql, params)

    runs.fetch_all = counted  # type: ignore[method-assign]
    task_ids = [await new_task(pool) for _ in range(6)]
    # two deliveries of the first task race inside one batch: exactly one of them wins
    deliveries = [*task_ids, task_ids[0]]
    claims = await asyncio.gather(*(runs.claim(task_id, redelivered=False, run_id=new_run_id())
                                    for task_id in deliveries))
    won = [c for c in claims if isinstance(c, Run)]
    assert sorted(c.task.id for c in won) == sorted(task_ids)
    assert [c for c in claims if isinstance(c, NotClaimed)] == [NotClaimed("duplicate", None)]
    assert all(c.task.status == "running" and c.task.attempts == 1 for c in won)
    done = await asyncio.gather(*(runs.succeed(c, f'{{"n": {n}}}') for n, c in enumerate(won)))
    assert [(t.id, t.status, t.result) for t in done if t is not None] == [
        (c.task.id, "succeeded", {"n": n}) for n, c in enumerate(won)]
    assert statements.count("task_claim") == 1
    assert statements.count("task_succeed") == 1


async def test_a_result_postgresql_refuses_fails_alone_and_spares_its_batch(pool: Pool) -> None:
    runs = RunStore(pool, "worker-bad-result")
    claims = [await runs.claim(await new_task(pool), redelivered=False, run_id=new_run_id())
              for _ in range(3)]
    assert all(isinstance(c, Run) for c in claims)
    good, bad, other = (c for c in claims if isinstance(c, Run))
    outcomes = await asyncio.gather(runs.succeed(good, '{"ok": 1}'),
                                    runs.succeed(bad, '{"text": "a\\u0000b"}'),
                                    runs.succeed(other, '{"ok": 2}'), return_exceptions=True)
    assert isinstance(outcomes[1], psycopg.DataError)
    assert [(t.status, t.result) for t in (outcomes[0], outcomes[2])
            if isinstance(t, Task)] == [("succeeded", {"ok": 1}), ("succeeded", {"ok": 2})]
