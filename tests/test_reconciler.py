"""The reconciler against the real servers: a purged queue loses no task, and a task whose
workers keep dying ends ``dead`` in PostgreSQL rather than ``running`` forever."""

from __future__ import annotations

import asyncio

import httpx
import psycopg
import pytest

from catalog import metrics, names
from catalog.metrics import series_name
from tests.services import Env, api_client, rabbitmqctl, start_agent, start_api, wait_until
from tests.tasks import events, submit, wait_for

pytestmark = pytest.mark.integration

OWN_ENV = {"reconcile_interval_s": "1", "reconcile_after_s": "2", "delivery_limit": "2",
           "shutdown_grace_s": "1"}
"""The settings of this module's ``own_env`` (see conftest)."""


def _count(env: Env, sql: str) -> int:
    with psycopg.connect(env.settings.database.url) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


async def _metric_sum(client: httpx.AsyncClient, urls: list[str], metric: str,
                      labels: str) -> float:
    total = 0.0
    for url in urls:
        for line in (await client.get(url)).text.splitlines():
            if line.startswith(metric + "{") and labels in line:
                total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_purged_queue_of_500_queued_tasks_still_runs_every_task_once(
        own_env: Env) -> None:
    api = start_api(own_env)
    async with api_client(own_env, api) as client:
        # Given 500 echo tasks published to their queue while no worker runs
        ids = [t["id"] for t in await asyncio.gather(
            *(submit(client, "echo", {"n": n}) for n in range(500)))]
        wait_until(lambda: _count(own_env, "SELECT count(*) FROM tasks"
                                  " WHERE published_at IS NOT NULL") == 500, timeout_s=30)
        # When the agent queue is purged (every message lost) and a worker starts
        rabbitmqctl("purge_queue", "-p", own_env.name, names.agent_queue("echo"))
        worker = start_agent(own_env, "--agents", "echo", "--concurrency", "8")
        # Then every task succeeds, each run exactly once
        wait_until(lambda: _count(own_env, "SELECT count(*) FROM tasks"
                                  " WHERE status = 'succeeded'") == 500, timeout_s=90,
                   interval_s=0.5)
        assert _count(own_env, "SELECT count(*) FROM task_events WHERE kind = 'succeeded'") == 500
        assert _count(own_env, "SELECT count(*) FROM task_events WHERE kind = 'started'") == 500
        assert _count(own_env, "SELECT count(*) FROM tasks WHERE attempts <> 1") == 0
        # and each lost one was handed back to the outbox once, and counted where alerts see it
        republished = _count(own_env, "SELECT count(*) FROM task_events"
                             " WHERE kind = 'republished'")
        assert republished == 500
        assert (await events(client, ids[0]))[2]["kind"] == "republished"
        counted = await _metric_sum(client, [f"{api}/metrics", worker.metrics_url()],
                              series_name(metrics.RECONCILED), 'action="republished"')
        assert counted == republished


async def test_a_task_whose_workers_keep_dying_ends_dead_with_the_brokers_reason(
        own_env: Env) -> None:
    api = start_api(own_env)
    async with api_client(own_env, api) as client:
        # Given a long task allowed 10 attempts, above the broker's delivery limit of 2
        task = await submit(client, "sleep", {"seconds": 60}, max_attempts=10)
        # When every worker that runs it is killed
        for attempt in range(1, 6):
            worker = start_agent(own_env, "--agents", "sleep", "--concurrency", "1")
            seen = await wait_for(client, task["id"], {"running", "dead"}, timeout_s=30)
            if seen["status"] == "dead":
                worker.kill()
                break
            wait_until(lambda a=attempt: _count(  # type: ignore[misc]
                own_env, f"SELECT attempts FROM tasks WHERE id = '{task['id']}'") >= a)
            worker.kill()
            await asyncio.sleep(0.5)
        # Then the broker's dead letter ends the task in PostgreSQL, with the reason
        done = await wait_for(client, task["id"], {"dead"}, timeout_s=30)
        assert done["attempts"] < 10
        assert "dead-lettered the message after 2 deliveries" in done["error"]
        last = (await events(client, task["id"]))[-1]
        assert last["kind"] == "dead_lettered"
        assert last["detail"]["reason"] == "delivery_limit"
        assert last["detail"]["by"] == "broker"
        # and nothing is left that an alert reads as running past its timeout
        assert _count(own_env, "SELECT count(*) FROM tasks WHERE status = 'running'") == 0
        page = (await client.get("/metrics")).text
        past = [line for line in page.splitlines()
                if line.startswith(series_name(metrics.RUNNING_PAST_TIMEOUT) + '{agent="sleep"')]
        assert past and all(line.endswith(" 0.0") for line in past)
