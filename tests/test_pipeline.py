"""The task pipeline end to end: API -> PostgreSQL -> RabbitMQ -> agent worker -> PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import httpx
import msgspec
import psycopg
import pytest
import redis

from catalog import names
from operations.drills.fake_llm import FakeLLM
from tests.services import Env, deliver_again
from tests.tasks import events, kinds, submit, wait_for, wait_for_event

pytestmark = pytest.mark.integration


async def test_submitted_task_succeeds_with_its_result(client: httpx.AsyncClient) -> None:
    # Given an echo task
    accepted = await submit(client, "echo", {"hello": "world", "n": [1, 2]})
    assert accepted["status"] == "queued"
    assert accepted["links"]["self"] == f"/v1/tasks/{accepted['id']}"
    # When the worker has run it
    task = await wait_for(client, accepted["id"])
    # Then it succeeded once, with the input echoed as its result
    assert task["status"] == "succeeded"
    assert task["result"] == {"hello": "world", "n": [1, 2]}
    assert task["attempts"] == 1
    assert task["finished_at"] >= task["started_at"] >= task["created_at"]
    assert kinds(await events(client, task["id"])) == ["submitted", "published", "started",
                                                       "succeeded"]


async def test_failed_attempt_is_retried_then_succeeds(client: httpx.AsyncClient) -> None:
    accepted = await submit(client, "fail", {"until_attempt": 3}, max_attempts=5)
    task = await wait_for(client, accepted["id"])
    assert task["status"] == "succeeded"
    assert task["attempts"] == 3
    assert task["result"] == {"succeeded_on_attempt": 3}
    timeline = await events(client, task["id"])
    retries = [e for e in timeline if e["kind"] == "retry_scheduled"]
    assert [e["attempt"] for e in retries] == [1, 2]
    assert all("fails on purpose" in e["detail"]["error"] for e in retries)
    # each retry went through a delay queue back to the work queue
    delayed = [e for e in timeline if e["kind"] == "published"
               and e["detail"].get("exchange") == names.DELAY_EXCHANGE]
    assert len(delayed) == 2
    assert [e["attempt"] for e in timeline if e["kind"] == "started"] == [1, 2, 3]


async def dead_letters(env: Env, timeout_s: float, **match: object) -> dict[str, object]:
    """The dead-letter record's row matching ``match`` (column = value), once it is there."""
    where = " AND ".join(f"{column} = %({column})s" for column in match)
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with await psycopg.AsyncConnection.connect(env.settings.database.url,
                                                     autocommit=True) as conn:
        while True:
            cur = await conn.execute(f"SELECT task_id::text, agent, reason, body, headers"
                                     f" FROM dead_letters WHERE {where}", match)
            row = await cur.fetchone()
            if row is not None:
                return dict(zip(("task_id", "agent", "reason", "body", "headers"), row,
                                strict=True))
            assert asyncio.get_running_loop().time() < deadline, f"no dead letter {match}"
            await asyncio.sleep(0.1)


async def test_exhausted_retries_end_dead_and_in_the_dead_letter_record(
        client: httpx.AsyncClient, env: Env) -> None:
    accepted = await submit(client, "fail", {"always": True}, max_attempts=2)
    task = await wait_for(client, accepted["id"])
    assert task["status"] == "dead"
    assert task["attempts"] == 2
    assert "attempt 2 fails on purpose" in task["error"]
    timeline = await events(client, task["id"])
    dead = [e for e in timeline if e["kind"] == "dead_lettered"]
    assert len(dead) == 1 and dead[0]["detail"]["reason"] == "exhausted"
    await wait_for_event(client, task["id"], "published", status="dead")
    recorded = await dead_letters(env, 10, task_id=task["id"])
    assert (recorded["agent"], recorded["reason"]) == ("fail", "exhausted")


async def test_non_retryable_failure_goes_dead_at_once(client: httpx.AsyncClient) -> None:
    accepted = await submit(client, "fail", {"non_retryable": True, "message": "bad input"},
                            max_attempts=5)
    task = await wait_for(client, accepted["id"])
    assert task["status"] == "dead"
    assert task["attempts"] == 1
    assert task["error"] == "NonRetryableError: bad input"
    timeline = await events(client, task["id"])
    assert "retry_scheduled" not in kinds(timeline)
    assert [e["detail"]["reason"] for e in timeline if e["kind"] == "dead_lettered"] == [
        "non_retryable"]


async def test_requeued_dead_task_runs_again_with_a_fresh_budget(
        client: httpx.AsyncClient) -> None:
    # Given a task that died on its only attempt but would succeed on the next
    accepted = await submit(client, "fail", {"until_attempt": 2}, max_attempts=1)
    dead = await wait_for(client, accepted["id"])
    assert dead["status"] == "dead"
    # When an operator requeues it
    response = await client.post(f"/v1/tasks/{dead['id']}/retry")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    # Then it runs again and succeeds on attempt 2
    task = await wait_for(client, dead["id"])
    assert task["status"] == "succeeded"
    assert task["attempts"] == 2
    assert "requeued" in kinds(await events(client, task["id"]))


async def test_requeue_of_a_task_that_is_not_dead_is_a_conflict(
        client: httpx.AsyncClient) -> None:
    task = await wait_for(client, (await submit(client, "echo", 1))["id"])
    response = await client.post(f"/v1/tasks/{task['id']}/retry")
    assert response.status_code == 409
    assert "status 'succeeded'" in response.json()["detail"]


async def test_summarize_agent_runs_through_the_pipeline(client: httpx.AsyncClient) -> None:
    text = ("Queues decouple producers from consumers. Cats sleep a lot. "
            "Durable queues keep messages when consumers restart. Rain fell.")
    task = await wait_for(client, (await submit(client, "summarize",
                                                {"text": text, "sentences": 2}))["id"])
    assert task["status"] == "succeeded", task
    assert task["result"]["sentence_count"] == 4
    assert len(task["result"]["sentences"]) == 2


async def test_duplicate_delivery_is_counted_and_dropped(client: httpx.AsyncClient,
                                                         env: Env) -> None:
    # Given a task that already succeeded
    task = await wait_for(client, (await submit(client, "echo", "once"))["id"])
    # When its message is delivered a second time
    await deliver_again(env, task["id"])
    # Then the worker drops it and records that on the timeline; the result is untouched
    timeline = await wait_for_event(client, task["id"], "duplicate_dropped")
    assert kinds(timeline).count("duplicate_dropped") == 1
    assert kinds(timeline).count("succeeded") == 1
    after = await wait_for(client, task["id"])
    assert after["result"] == "once"
    assert after["finished_at"] == task["finished_at"]


async def test_llm_agent_calls_the_model_endpoint_and_records_usage(
        client: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    # Given an llm task submitted over the API
    accepted = await submit(client, "llm", {"prompt": "say hi", "model": "test-model"})
    # When the worker has run it against the (local, protocol-speaking) model endpoint
    task = await wait_for(client, accepted["id"])
    # Then the real chat-completions request went out and the result records model and tokens
    assert task["status"] == "succeeded", task
    sent = [r for r in fake_llm.requests if r.body.get("model") == "test-model"]
    assert len(sent) == 1
    assert sent[0].path == "/v1/chat/completions"
    assert sent[0].headers["authorization"] == "Bearer sk-test"
    assert sent[0].body["messages"] == [{"role": "user", "content": "say hi"}]
    result = task["result"]
    assert result["content"] == "echo: say hi"
    assert result["model"] == "test-model"
    assert result["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert result["latency_s"] > 0


async def test_a_malformed_message_goes_to_the_dead_letter_record(client: httpx.AsyncClient,
                                                                   env: Env) -> None:
    # Given a message on an agent queue that is not a task message
    poison = b"not a task message " + uuid.uuid4().hex.encode()
    connection = await aio_pika.connect(env.settings.broker.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(names.WORK_EXCHANGE)
        await exchange.publish(aio_pika.Message(poison), routing_key="echo")
    # Then the worker rejects it, RabbitMQ dead-letters it, and it is recorded as an orphan
    # with its body (nothing loops, nothing is lost)
    recorded = await dead_letters(env, 10, body=poison)
    assert (recorded["task_id"], recorded["agent"], recorded["reason"]) == (
        None, "echo", "rejected")


async def test_the_status_cache_holds_every_transition_up_to_the_final_one(
        client: httpx.AsyncClient, env: Env) -> None:
    # Given a task that went through queued -> running -> retrying -> running -> succeeded
    task = await wait_for(client, (await submit(client, "fail", {"until_attempt": 2}))["id"])
    assert task["status"] == "succeeded"
    # Then Redis holds the final version (written by the worker, not by a later read)
    cache = redis.Redis.from_url(env.settings.redis.url)
    key = f"{env.settings.redis.prefix}task:{task['id']}"
    deadline = asyncio.get_running_loop().time() + 2
    while (cached := cache.hgetall(key)).get(b"v") != b"5":
        assert asyncio.get_running_loop().time() < deadline, cached
        await asyncio.sleep(0.02)
    assert msgspec.json.decode(cached[b"doc"])["status"] == "succeeded"
    assert 0 < cache.ttl(key) <= env.settings.redis.status_ttl_s
