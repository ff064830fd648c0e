"""The dead-letter life cycle against the real servers: every dead letter is recorded in
PostgreSQL and acked (the queue stays empty), replayed in bulk at a rate (each replay a fresh
attempt budget, the timeline naming who), broker-side dead letters too; orphans are kept with
their body, and old records purged."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from datetime import UTC, datetime

import aio_pika
import httpx
import psycopg
import pytest

from catalog import names
from orchestrator.dlq import since_time
from service.db.dead_letters import body_text, jsonable
from service.domain import input_checksum
from tests.services import Env, create_key, start_agent, start_api, wait_until
from tests.tasks import submit, wait_for
from tests.test_cli import command_line

OWN_ENV = {"reconcile_after_s": "600"}
"""A task this module writes straight into PostgreSQL is not republished meanwhile."""


def count(env: Env, sql: str, params: tuple[object, ...] = ()) -> int:
    with psycopg.connect(env.settings.database.url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return int(row[0])


def dead_letter_queue_messages(env: Env) -> int:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", env.name,
                          "--no-table-headers", "name", "messages"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    depths = dict(line.rsplit("\t", 1) for line in out.splitlines() if "\t" in line)
    return int(depths[names.DEAD_LETTER_QUEUE])


async def publish_raw(env: Env, queue: str, body: bytes, message_id: str | None) -> None:
    """A message no publisher of the orchestrator would send, straight into ``queue``."""
    connection = await aio_pika.connect(env.settings.broker.url)
    async with connection:
        channel = await connection.channel()
        await channel.default_exchange.publish(
            aio_pika.Message(body, message_id=message_id), routing_key=queue)


@pytest.mark.integration
async def test_200_dead_tasks_replayed_in_bulk_each_succeed_once(own_env: Env) -> None:
    url = start_api(own_env)
    admin_name = f"ops-{uuid.uuid4().hex[:6]}"
    admin = create_key(own_env, admin_name, "admin")
    cli = command_line(own_env, url, admin)
    start_agent(own_env, "--agents", "fail", "--concurrency", "16")
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers={"Authorization": f"Bearer {admin}"}) as client:
        # Given 200 tasks that fail twice, allowed two attempts: all dead
        tasks = await asyncio.gather(*(submit(client, "fail", {"until_attempt": 3},
                                              max_attempts=2) for _ in range(200)))
        ids = {t["id"] for t in tasks}
        # Then every dead letter is in the record, and none is left in the queue
        wait_until(lambda: count(own_env, "SELECT count(*) FROM dead_letters"
                                 " WHERE replayed_at IS NULL") == 200, timeout_s=90,
                   interval_s=0.5)
        assert count(own_env, "SELECT count(*) FROM tasks WHERE status = 'dead'") == 200
        wait_until(lambda: dead_letter_queue_messages(own_env) == 0, timeout_s=30)
        listed = json.loads(cli("dlq", "list", "--agent", "fail", "--limit", "5",
                                "--json").stdout)
        assert listed["open"] == 200 and len(listed["items"]) == 5
        assert {item["reason"] for item in listed["items"]} == {"exhausted"}

        # When a dry run says what a replay would do, nothing changes
        dry = cli("dlq", "replay", "--all", "--agent", "fail", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        assert len(json.loads(dry.stdout)["replayed"]) == 200
        assert count(own_env, "SELECT count(*) FROM tasks WHERE status = 'dead'") == 200

        # When all of them are replayed at 100 per second
        started = time.monotonic()
        done = cli("dlq", "replay", "--all", "--agent", "fail", "--rate", "100")
        took_s = time.monotonic() - started
        print(f"\nreplayed 200 dead letters at --rate 100 in {took_s:.2f} s")
        assert done.returncode == 0, done.stderr
        assert "replayed 200 dead letters; 0 not replayed" in done.stdout
        assert took_s >= 1.0  # two batches of 100, a second apart

        # Then each task gets a fresh budget of two attempts and succeeds on the third, once
        for task_id in ids:
            final = await wait_for(client, task_id, {"succeeded"}, timeout_s=60)
            assert final["attempts"] == 3 and final["max_attempts"] == 4
        assert count(own_env, "SELECT count(*) FROM task_events WHERE kind = 'succeeded'") == 200
        # and the timeline says who replayed it, from which dead letter
        assert count(own_env, "SELECT count(*) FROM task_events e JOIN dead_letters d"
                     " ON d.id = (e.detail->>'dead_letter')::bigint AND d.task_id = e.task_id"
                     " WHERE e.kind = 'requeued' AND e.detail->>'by' = %s",
                     (f"api-key:{admin_name}",)) == 200
        # and the record keeps their history, none open; the queue holds nothing
        assert count(own_env, "SELECT count(*) FROM dead_letters WHERE replayed_by = %s",
                     (f"api-key:{admin_name}",)) == 200
        assert count(own_env, "SELECT count(*) FROM dead_letters"
                     " WHERE replayed_at IS NULL") == 0
        assert dead_letter_queue_messages(own_env) == 0
        replayed = json.loads(cli("dlq", "list", "--state", "replayed", "--json").stdout)
        assert len(replayed["items"]) == 50 and replayed["open"] == 0
        assert all(item["task_status"] == "succeeded" for item in replayed["items"])
        # and the gauge the alert reads went back to zero
        wait_until(lambda: 'orchestrator_dead_letters_open{agent="fail"} 0.0'
                   in httpx.get(f"{url}/metrics").text, timeout_s=10)
        again = cli("dlq", "replay", "--all", "--agent", "fail")
        assert again.returncode == 0 and "replayed 0 dead letters" in again.stdout


@pytest.mark.integration
async def test_broker_dead_letters_are_recorded_replayable_and_orphans_kept(
        own_env: Env) -> None:
    url = start_api(own_env)
    admin = create_key(own_env, None, "admin")
    cli = command_line(own_env, url, admin)
    start_agent(own_env, "--agents", "echo", "--concurrency", "4")
    # Given a waiting echo task whose message is replaced by a malformed one with its id
    task_id = str(uuid.uuid4())
    with psycopg.connect(own_env.settings.database.url, autocommit=True) as conn:
        conn.execute("INSERT INTO tasks (id, agent, tenant, input, status, max_attempts,"
                     " timeout_s, input_checksum, published_at) VALUES (%s, 'echo', 'test',"
                     " '\"hello\"', 'queued', 3, 60, %s, now())",
                     (task_id, input_checksum("hello")))
    queue = names.agent_queue("echo")
    await publish_raw(own_env, queue, b"{not a task message", task_id)
    # and a message that names no task at all
    await publish_raw(own_env, queue, b"\xff\xfe garbage", None)

    # Then the worker rejects both, the broker dead-letters them, and both are recorded
    wait_until(lambda: count(own_env, "SELECT count(*) FROM dead_letters") == 2, timeout_s=30)
    listed = cli("dlq", "list", "--reason", "rejected")
    assert listed.returncode == 0, listed.stderr
    assert "(orphan)" in listed.stdout and task_id in listed.stdout
    page = json.loads(cli("dlq", "list", "--json").stdout)
    by_task = {item["task_id"]: item for item in page["items"]}
    assert by_task[task_id]["task_status"] == "dead"
    assert by_task[task_id]["queue"] == queue and by_task[task_id]["agent"] == "echo"
    orphan = by_task[None]
    assert (orphan["agent"], orphan["reason"]) == ("echo", "rejected")
    shown = json.loads(cli("dlq", "show", str(orphan["id"])).stdout)
    assert shown["body"]["encoding"] == "base64"
    assert shown["headers"]["x-first-death-reason"] == "rejected"
    assert dead_letter_queue_messages(own_env) == 0

    # When the task's dead letter is replayed, the task runs from a well-formed message
    done = cli("dlq", "replay", "--id", str(by_task[task_id]["id"]))
    assert done.returncode == 0, done.stdout + done.stderr
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers={"Authorization": f"Bearer {admin}"}) as client:
        final = await wait_for(client, task_id, {"succeeded"}, timeout_s=30)
        assert final["result"] == "hello"
        # And the orphan cannot be replayed: the answer says why, the exit code says so
        refused = cli("dlq", "replay", "--id", str(orphan["id"]))
        assert refused.returncode == 1 and "an orphan: no task to requeue" in refused.stdout
        # and bad requests get a 4xx that says what to fix
        lax = await client.post("/v1/admin/dead-letters/replay", json={"dry_run": 0})
        assert lax.status_code == 400
        assert lax.json()["detail"] == "body.dry_run: must be a boolean, not 0"
        missing = await client.get("/v1/admin/dead-letters/999999")
        assert missing.status_code == 404 and "dlq list" in missing.json()["detail"]
        bad_state = await client.get("/v1/admin/dead-letters", params={"state": "bogus"})
        assert bad_state.status_code == 400
        tenant_key = create_key(own_env, None, "tasks:read,tasks:write")
        forbidden = await client.get("/v1/admin/dead-letters",
                                     headers={"Authorization": f"Bearer {tenant_key}"})
        assert forbidden.status_code == 403 and "admin" in forbidden.json()["detail"]

    # When the record is purged of what is older than 7 days, only the old orphan goes
    with psycopg.connect(own_env.settings.database.url, autocommit=True) as conn:
        conn.execute("UPDATE dead_letters SET dead_at = now() - interval '8 days'"
                     " WHERE task_id IS NULL")
    dry = cli("dlq", "purge", "--older-than", "7d", "--dry-run")
    assert "would delete 1 dead letters" in dry.stdout
    assert count(own_env, "SELECT count(*) FROM dead_letters") == 2
    purged = cli("dlq", "purge", "--older-than", "7d")
    assert purged.returncode == 0 and "deleted 1 dead letters" in purged.stdout
    assert count(own_env, "SELECT count(*) FROM dead_letters WHERE task_id IS NULL") == 0
    assert count(own_env, "SELECT count(*) FROM dead_letters WHERE task_id = %s",
                 (task_id,)) == 1
    bad_age = cli("dlq", "purge", "--older-than", "a week")
    assert bad_age.returncode == 2 and "not a duration" in bad_age.stderr

    # And the retention job drops dead letters older than ORCH_RETENTION_DEAD (30 days) too
    with psycopg.connect(own_env.settings.database.url, autocommit=True) as conn:
        conn.execute("UPDATE dead_letters SET dead_at = now() - interval '31 days'")
    start_api(own_env, environ=own_env.with_vars(retention_interval_s="1"))
    wait_until(lambda: count(own_env, "SELECT count(*) FROM dead_letters") == 0, timeout_s=30)
    assert count(own_env, "SELECT count(*) FROM tasks WHERE id = %s", (task_id,)) == 1


@pytest.mark.unit
def test_since_is_an_age_or_a_time() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert since_time("12h", now) == "2026-12-02T00:00:00+00:00"
    assert since_time("2026-12-01T08:00:00", now) == "2026-12-01T08:00:00+00:00"
    with pytest.raises(ValueError, match="neither an age"):
        since_time("yesterday", now)


@pytest.mark.unit
def test_amqp_headers_and_bodies_are_kept_as_json() -> None:
    headers = {"x-death": [{"count": 1, "routing-keys": [b"echo"],
                            "time": datetime(2026, 12, 2, tzinfo=UTC)}], "nul": "a\x00b"}
    assert jsonable(headers) == {"x-death": [{"count": 1, "routing-keys": ["echo"],
                                              "time": "2026-12-02T00:00:00+00:00"}],
                                 "nul": "a\ufffdb"}
    assert body_text(b"{}") == {"encoding": "utf-8", "data": "{}"}
    assert body_text(b"\xff") == {"encoding": "base64", "data": "/w=="}
