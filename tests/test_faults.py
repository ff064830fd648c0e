"""Fault injection against the real services: killed workers, a broken broker link, Redis down,
graceful shutdown. Each test has its own database, vhost and key prefix."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from urllib.parse import urlsplit

import psycopg
import pytest

from operations.drills.proxy import proxy_to
from service.db.migrate import available_migrations
from tests.services import (
    ORCHESTRATOR,
    Env,
    api_client,
    ensure_redis,
    free_port,
    redis_answers,
    start_agent,
    start_api,
    stop_redis,
    wait_until,
)
from tests.tasks import events, kinds, submit, wait_for, wait_for_event

pytestmark = pytest.mark.integration


OWN_ENV = {"shutdown_grace_s": "1"}
ADMIN = "tasks:write,tasks:read,admin"  # readiness details are for admins
"""The settings of this module's ``own_env`` (see conftest)."""


async def test_worker_killed_mid_task_the_task_still_completes_exactly_once(
        own_env: Env) -> None:
    url = start_api(own_env)
    first = start_agent(own_env, "--agents", "sleep", "--concurrency", "1")
    async with api_client(own_env, url) as client:
        # Given a task running on the first worker
        task = await submit(client, "sleep", {"seconds": 1.5})
        running = await wait_for(client, task["id"], {"running"})
        # When that worker is killed with SIGKILL and another one starts
        first.popen.kill()
        first.popen.wait(10)
        start_agent(own_env, "--agents", "sleep", "--concurrency", "1")
        # Then the redelivered message is claimed again and the task succeeds once
        done = await wait_for(client, task["id"], timeout_s=30)
        assert done["status"] == "succeeded"
        assert done["attempts"] == 2
        timeline = await events(client, task["id"])
        assert kinds(timeline).count("succeeded") == 1
        starts = [e for e in timeline if e["kind"] == "started"]
        assert starts[0]["worker_id"] == running["worker_id"]
        assert starts[1]["worker_id"] != running["worker_id"]
        assert starts[1]["detail"] == {"redelivered": True}
        assert done["worker_id"] == starts[1]["worker_id"]


async def test_tasks_accepted_while_the_broker_link_is_down_are_published_when_it_returns(
        own_env: Env) -> None:
    with proxy_to("127.0.0.1", 5672) as proxy:
        amqp = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{own_env.name}"
        # every process reaches RabbitMQ through the proxy (each one runs an outbox relay)
        url = start_api(own_env, environ=own_env.with_vars(amqp_url=amqp))
        start_agent(own_env, "--agents", "echo", environ=own_env.with_vars(amqp_url=amqp))
        async with api_client(own_env, url, ADMIN) as client:
            warm = await submit(client, "echo", "warm-up")
            assert (await wait_for(client, warm["id"]))["status"] == "succeeded"
            # Given the connections to RabbitMQ are broken
            proxy.cut()
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["dependencies"]["rabbitmq"]["status"] == "down"
            # When tasks are submitted
            accepted = [await submit(client, "echo", {"n": n}) for n in range(5)]
            await asyncio.sleep(1.5)
            # Then they are accepted and wait, unpublished, in PostgreSQL
            for task in accepted:
                current = (await client.get(f"/v1/tasks/{task['id']}")).json()
                assert current["status"] == "queued"
                assert current["published_at"] is None
            # And once the link is back the relay publishes each exactly once and they run
            proxy.restore()
            for n, task in enumerate(accepted):
                done = await wait_for(client, task["id"], timeout_s=40)
                assert done["status"] == "succeeded"
                assert done["result"] == {"n": n}
                assert kinds(await events(client, task["id"])).count("published") == 1


async def test_submit_and_status_keep_working_while_redis_is_stopped(own_env: Env) -> None:
    url = start_api(own_env)
    start_agent(own_env, "--agents", "echo")
    async with api_client(own_env, url, ADMIN) as client:
        cached = await submit(client, "echo", "before")
        await wait_for(client, cached["id"])
        try:
            # Given Redis is stopped
            stop_redis()
            wait_until(lambda: not redis_answers(), timeout_s=10)
            # When a task is submitted and read
            task = await submit(client, "echo", {"during": "outage"})
            done = await wait_for(client, task["id"])
            # Then everything works from PostgreSQL, and readiness says "degraded"
            assert done["status"] == "succeeded"
            assert done["result"] == {"during": "outage"}
            ready = await client.get("/health/ready")
            assert ready.status_code == 200
            assert ready.json()["status"] == "degraded"
            assert ready.json()["dependencies"]["redis"]["status"] == "down"
            # and that the rate limits let requests through unchecked, counted
            assert ready.json()["rate_limits"] == "failing open"
            api = next(p for p in own_env.processes if p.log_path.name.startswith("api-"))
            assert "rate limits are not enforced" in api.output()
            agents = (await client.get("/v1/agents")).json()
            assert agents["source"] == "postgresql"
            echo = next(a for a in agents["agents"] if a["name"] == "echo")
            assert echo["live_workers"] == 1
        finally:
            ensure_redis()
        assert (await client.get(f"/v1/tasks/{cached['id']}")).json()["status"] == "succeeded"


async def test_sigterm_finishes_work_within_the_grace_period_and_leaves_the_rest(
        own_env: Env) -> None:
    url = start_api(own_env)
    worker = start_agent(own_env, "--agents", "sleep", "--concurrency", "2")
    async with api_client(own_env, url) as client:
        # Given a short and a long task running (grace period: 1 s)
        short = await submit(client, "sleep", {"seconds": 0.5})
        long = await submit(client, "sleep", {"seconds": 4})
        await wait_for(client, short["id"], {"running", "succeeded"})
        await wait_for(client, long["id"], {"running"})
        # When the worker gets SIGTERM
        assert worker.terminate(timeout_s=20) == 0
        # Then the short task finished, the long one was left unacked (still running)
        assert (await wait_for(client, short["id"]))["status"] == "succeeded"
        assert (await client.get(f"/v1/tasks/{long['id']}")).json()["status"] == "running"
        assert "stay unacked" in worker.output()
        # And the next worker gets the long task redelivered and completes it
        start_agent(own_env, "--agents", "sleep")
        done = await wait_for(client, long["id"], timeout_s=30)
        assert done["status"] == "succeeded"
        assert kinds(await events(client, long["id"])).count("succeeded") == 1


@pytest.mark.parametrize(("variable", "value", "name", "hint"), [
    ("ORCH_DATABASE_URL", "postgresql://postgres:secret@127.0.0.2:5432/x", "PostgreSQL",
     "pg_ctlcluster"),
    ("ORCH_AMQP_URL", "amqp://guest:secret@127.0.0.2:5672/", "RabbitMQ", "rabbitmq-server"),
])
def test_unreachable_dependency_at_start_is_one_clear_line(
        variable: str, value: str, name: str, hint: str) -> None:
    result = subprocess.run([*ORCHESTRATOR, "api", "--port",
                             str(free_port())],
                            env={**os.environ, variable: value}, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert f"{name} is not answering at" in errors[0]  # nothing listens on that host
    assert hint in errors[0]
    assert "secret" not in result.stderr  # passwords never printed
    assert "127.0.0.2" in errors[0]


def test_migrations_are_applied_once(own_env: Env) -> None:
    for _ in range(2):
        result = subprocess.run([*ORCHESTRATOR, "migrate"],
                                env={**os.environ, **own_env.environ}, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    with psycopg.connect(own_env.settings.database.url) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert versions == [(m.version,) for m in available_migrations()]


async def test_a_cancel_whose_broadcast_was_lost_still_stops_the_running_task(
        own_env: Env) -> None:
    url = start_api(own_env)
    start_agent(own_env, "--agents", "sleep")
    async with api_client(own_env, url) as client:
        task = await submit(client, "sleep", {"seconds": 30})
        await wait_for(client, task["id"], {"running"})
        # Given a cancel request recorded in PostgreSQL but never broadcast to the worker
        async with await psycopg.AsyncConnection.connect(own_env.settings.database.url,
                                                         autocommit=True) as conn:
            await conn.execute("UPDATE tasks SET cancel_requested = true WHERE id = %s",
                               (task["id"],))
        # Then the worker's cancel check stops the agent within a few seconds
        done = await wait_for(client, task["id"], timeout_s=10)
        assert done["status"] == "cancelled"
        assert "succeeded" not in kinds(await events(client, task["id"]))


async def test_several_api_processes_publish_every_task_exactly_once(own_env: Env) -> None:
    # Given two API server processes, each with its own outbox relay
    url = start_api(own_env, workers=2)
    start_agent(own_env, "--agents", "echo", "--concurrency", "16")
    async with api_client(own_env, url) as client:
        # When many tasks are submitted concurrently
        accepted = await asyncio.gather(*(submit(client, "echo", n) for n in range(60)))
        # Then every one is published once and runs once
        assert accepted, "nothing to check"
        for task in accepted:
            done = await wait_for(client, task["id"], timeout_s=30)
            assert done["status"] == "succeeded"
            timeline = kinds(await events(client, task["id"]))
            assert timeline.count("published") == 1
            assert timeline.count("started") == 1


def test_an_agent_whose_metrics_port_is_taken_exits_with_one_line(own_env: Env) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*ORCHESTRATOR, "agent", "--metrics-port", str(port)],
            env={**os.environ, **own_env.environ}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"cannot serve agent metrics on 127.0.0.1:{port}" in result.stderr


async def test_a_worker_holds_its_deliveries_through_a_database_outage(own_env: Env) -> None:
    url = start_api(own_env)
    database = urlsplit(own_env.settings.database.url)
    with proxy_to(database.hostname or "127.0.0.1", database.port or 5432) as proxy:
        through_proxy = database._replace(netloc=f"{database.username}@127.0.0.1:{proxy.port}")
        start_agent(own_env, "--agents", "echo", environ=own_env.with_vars(
            database_url=through_proxy.geturl(), db_pool_timeout_s="1"))
        async with api_client(own_env, url) as client:
            # Given the agent's database link is broken
            proxy.cut()
            # When tasks arrive (the API still commits and publishes them)
            accepted = [await submit(client, "echo", n) for n in range(3)]
            for task in accepted:
                await wait_for_event(client, task["id"], "published")
            await asyncio.sleep(3)  # the worker holds the deliveries and retries
            assert {(await client.get(f"/v1/tasks/{t['id']}")).json()["status"]
                    for t in accepted} == {"queued"}
            # Then, once the database answers again, each runs once, from its first delivery
            proxy.restore()
            for task in accepted:
                done = await wait_for(client, task["id"], timeout_s=30)
                assert done["status"] == "succeeded"
                starts = [e for e in await events(client, task["id"]) if e["kind"] == "started"]
                assert [e["detail"] for e in starts] == [{"redelivered": False}]
