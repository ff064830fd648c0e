"""The task counts kept with the transitions (migration 0013) against real PostgreSQL and a real
pipeline: after a mixed workload (successes, retries, dead letters, cancels of waiting and of
running tasks, a purge, rows written by hand) they equal ``count(*)``, folded or not; and every
query the gauges, the lists and the timelines run can be served by an index (EXPLAIN)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from service.db import outbox, recovery, retention, task_stats
from service.db.pool import open_pool
from service.db.task_stats import TaskStats
from tests.services import ORCHESTRATOR, Env, api_client, start_agent, start_api
from tests.test_retention import seed

pytestmark = pytest.mark.integration

FINAL = {"succeeded", "dead", "cancelled"}


def migrate(env: Env) -> None:
    subprocess.run([*ORCHESTRATOR, "migrate"], env={**os.environ, **env.environ},
                   check=True, capture_output=True, timeout=60)


def counted(env: Env) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """The truth: ``(agent, status) -> count(*)`` and unfinished tasks by tenant."""
    with psycopg.connect(env.settings.database.url, autocommit=True) as conn:
        by_status = {(a, s): n for a, s, n in conn.execute(
            "SELECT agent, status, count(*) FROM tasks GROUP BY 1, 2").fetchall()}
        active = {t: n for t, n in conn.execute(
            "SELECT tenant, count(*) FROM tasks WHERE status IN ('queued', 'retrying', 'running')"
            " GROUP BY 1").fetchall()}
    return by_status, active


@pytest.fixture
async def stats(own_env: Env) -> AsyncIterator[TaskStats]:
    pool = await open_pool(own_env.settings.database, "test-counts")
    try:
        yield TaskStats(pool)
    finally:
        await pool.close()


async def submit(client: httpx.AsyncClient, agent: str, payload: Any, **fields: Any) -> str:
    response = await client.post("/v1/tasks", json={"agent": agent, "input": payload, **fields})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def status_of(client: httpx.AsyncClient, task_id: str) -> str:
    return str((await client.get(f"/v1/tasks/{task_id}")).json()["status"])


async def test_counts_equal_count_star_after_a_mixed_workload(own_env: Env,
                                                              stats: TaskStats) -> None:
    # a fold every 0.2 s in the API: the comparison below catches both sides of a fold
    url = start_api(own_env, environ=own_env.with_vars(count_fold_interval_s="0.2"))
    start_agent(own_env, "--agents", "echo,fail,sleep")
    async with api_client(own_env, url) as client:
        done = [await submit(client, "echo", {"n": i}) for i in range(20)]
        done += [await submit(client, "fail", {"until_attempt": 2}, max_attempts=3)
                 for _ in range(3)]  # a retry each, then success
        done += [await submit(client, "fail", {"always": True}, max_attempts=2)
                 for _ in range(3)]  # dead, dead-lettered
        running = [await submit(client, "sleep", {"seconds": 60}) for _ in range(2)]
        later = [await submit(client, "echo", {}, delay_s=600) for _ in range(4)]
        for task_id in running:
            await wait_until_async(lambda t=task_id: status_of(client, t), {"running"})
        for task_id in [*running, *later[:2]]:
            assert (await client.post(f"/v1/tasks/{task_id}/cancel")).status_code == 200
        for task_id in [*done, *running, *later[:2]]:
            await wait_until_async(lambda t=task_id: status_of(client, t), FINAL)
    seed(own_env, "succeeded", 20, 30)  # rows written by hand count too
    seed(own_env, "dead", 20, 5)
    purge = await asyncio.to_thread(
        subprocess.run, [*ORCHESTRATOR, "purge", "--older-than", "7d"],
        env={**os.environ, **own_env.environ}, capture_output=True, text=True, timeout=120)
    assert purge.returncode == 0, purge.stderr

    truth, active = counted(own_env)
    assert truth[("echo", "succeeded")] == 20 and truth[("fail", "dead")] == 3
    assert truth[("sleep", "cancelled")] == 2 and truth[("echo", "queued")] == 2
    assert await stats.by_status() == truth  # deltas not folded yet included
    assert await stats.active_by_tenant() == active == {"test": 2}
    await stats.fold_counts()
    assert await stats.by_status() == truth
    with psycopg.connect(own_env.settings.database.url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM task_count_deltas").fetchone()
        assert row is not None and row[0] == 0  # all folded
        conn.execute("TRUNCATE tasks CASCADE")
    assert await stats.by_status() == {} and await stats.active_by_tenant() == {}


async def wait_until_async(read: Any, wanted: set[str], timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (status := await read()) not in wanted:
        assert asyncio.get_running_loop().time() < deadline, f"still {status}, not {wanted}"
        await asyncio.sleep(0.1)


async def test_concurrent_transitions_and_folds_keep_the_counts(own_env: Env,
                                                                stats: TaskStats) -> None:
    """Many connections moving tasks between statuses while two folders fold: no lost delta,
    no delta folded twice (the statement-level triggers and the fold lock)."""
    migrate(own_env)
    seed(own_env, "queued", 0, 2000)
    url = own_env.settings.database.url

    async def churn(worker: int) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for step in range(40):
                status = ("running", "succeeded", "queued")[step % 3]
                await conn.execute(
                    "UPDATE tasks SET status = %s WHERE id IN (SELECT id FROM tasks"
                    " WHERE abs(hashtext(id::text)) %% 6 = %s LIMIT 50)", (status, worker))

    async def fold() -> None:
        for _ in range(30):
            await stats.fold_counts()
            await asyncio.sleep(0.01)

    await asyncio.gather(*(churn(w) for w in range(6)), fold(), fold())
    truth = counted(own_env)[0]
    assert sum(truth.values()) == 2000 and len(truth) == 3  # the churn moved tasks around
    assert await stats.by_status() == truth
    await stats.fold_counts()
    assert await stats.by_status() == truth


LIST = "SELECT id FROM tasks {where} ORDER BY created_at DESC, id DESC LIMIT 50"
PARAMS = {"grace_s": 10, "window_s": 300, "before": "2026-01-01", "agent": "echo",
          "after_s": 30, "limit": 100, "status": "succeeded", "age_s": 86400, "batch": 1000,
          "id": "00000000-0000-0000-0000-000000000000"}
INDEX = {"due backlog": "tasks_live_idx",
         "reconciler waiting": "tasks_live_idx", "one task": "tasks_pkey",
         "timeline": "task_events_task_idx", "timeline after": "task_events_task_idx"}
"""The index a query must use where another one would serve it too, but by reading all rows."""
EXPLAINED = {
    "tasks by status (gauges)": task_stats._BY_STATUS,
    "active by tenant (caps)": task_stats._ACTIVE_BY_TENANT,
    "due backlog": task_stats._DUE,
    "past timeout": task_stats._PAST_TIMEOUT,
    "finished window": task_stats._FINISHED,
    "outbox backlog": outbox._BACKLOG,
    "reconciler waiting": recovery._WAITING_BY_AGENT,
    "reconciler stale": recovery._STALE,
    "retention due": retention._PURGE,
    "list newest": LIST.format(where=""),
    "list by status": LIST.format(where="WHERE status = 'dead'"),
    "list by agent": LIST.format(where="WHERE agent = 'echo'"),
    "list by tenant, next page": LIST.format(
        where="WHERE tenant = 'test' AND (created_at, id) < (now(), %(id)s::uuid)"),
    "one task": "SELECT * FROM tasks WHERE id = %(id)s::uuid",
    "timeline": "SELECT * FROM task_events WHERE task_id = %(id)s::uuid ORDER BY id",
    "timeline after": "SELECT * FROM task_events WHERE task_id = %(id)s::uuid AND id > 5"
    " ORDER BY id LIMIT 1000",
}


def test_every_query_the_gauges_lists_and_timelines_run_can_be_served_by_an_index(
        own_env: Env) -> None:
    """With sequential scans priced out, a query that no index serves still plans one: the
    plan shows whether the table's size decides its cost."""
    migrate(own_env)
    scanned = {}
    with psycopg.connect(own_env.settings.database.url, autocommit=True,
                         cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute("SET enable_seqscan = off")
        for name, sql in EXPLAINED.items():
            plan = [row[0] for row in conn.execute(f"EXPLAIN {sql}", PARAMS).fetchall()]
            seq = [line for line in plan if "Seq Scan on task" in line
                   and "task_count" not in line]
            if seq or INDEX.get(name, "") not in "\n".join(plan):
                scanned[name] = plan
    assert not scanned, scanned
