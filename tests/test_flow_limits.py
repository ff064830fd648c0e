"""Flow limits held across workers (Redis): a concurrency key cannot take every slot, the agent's
concurrency and rate hold over two workers, a token budget makes the next task wait, and a
provider's Retry-After spends no attempt. A task over a limit waits; none fails."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from agents.builtin.llm import retry_after_s
from agents.registry import FlowLimits
from operations.drills.fake_llm import FakeLLM
from service.ratelimit import Rate
from service.worker.flow import Limits, Wait, _parsed, resolve_limits
from tests.services import Env, api_client, start_agent, start_api
from tests.tasks import events, submit, wait_for

OWN_ENV = {"agent_limits": "sleep:concurrency=3,max_concurrency_per_key=2;echo:rate=10/s"}


# --- reading the limits ----------------------------------------------------------------------

@pytest.mark.unit
def test_a_deployment_changes_or_lifts_what_an_agent_declares() -> None:
    declared = FlowLimits(rate="60/min", tokens="90000/min", concurrency=20)
    limits = _parsed("llm", declared, {"concurrency": "5", "tokens": "none",
                                       "max_concurrency_per_key": "2"})
    assert limits == Limits(Rate(60, 60), None, 5, 2)


@pytest.mark.unit
@pytest.mark.parametrize(("text", "says"), [
    ("sleep", "is not NAME:field=value"),
    ("sleep:speed=3", "fields are rate, tokens"),
    ("sleep:rate=fast", "flow limits of sleep: rate 'fast'"),
    ("sleep:concurrency=0", "at least 1"),
    ("nobody:rate=1/s", "unknown agents ['nobody']"),
])
def test_limits_that_cannot_be_read_are_refused_naming_them(text: str, says: str) -> None:
    import agents.builtin  # noqa: F401  (registers the built-in agents)

    with pytest.raises(ValueError, match=re.escape(says)):
        resolve_limits(["sleep"], text)


@pytest.mark.unit
def test_retry_after_is_read_as_seconds_or_a_date_and_bounded() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert retry_after_s("2") == 2.0
    assert retry_after_s("Thu, 03 Dec 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_s("-5") == 0.0 and retry_after_s("99999") == 3600.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None


# --- held across workers -------------------------------------------------------------------

def _intervals(database_url: str, where: str,
               params: tuple[Any, ...] = ()) -> list[tuple[Any, Any]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(f"SELECT started_at, finished_at FROM tasks WHERE status ="
                            f" 'succeeded' AND {where}", params).fetchall()


def _most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        most = max(most, running)
    return most


def _statuses(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {str(row[0]) for row in conn.execute("SELECT DISTINCT status FROM tasks")}


@pytest.mark.integration
async def test_one_busy_key_cannot_take_every_slot(own_env: Env) -> None:
    """500 tasks of one concurrency key and 5 of another, on two workers of 4 slots, the agent
    bounded at 3 running and 2 per key: the 5 finish while the 500 still run."""
    url = start_api(own_env)
    for _ in range(2):
        start_agent(own_env, "--agents", "sleep", environ=own_env.with_vars(concurrency="4"))
    database = own_env.settings.database.url
    async with api_client(own_env, url) as client:
        gate = asyncio.Semaphore(32)

        async def one(key: str) -> str:
            async with gate:
                task = await submit(client, "sleep", {"seconds": 0.2}, concurrency_key=key)
            return str(task["id"])

        big = await asyncio.gather(*(one("customer-big") for _ in range(500)))
        small = await asyncio.gather(*(one("customer-small") for _ in range(5)))
        for task_id in small:
            assert (await wait_for(client, task_id, timeout_s=60))["status"] == "succeeded"
        with psycopg.connect(database) as conn:
            row = conn.execute("SELECT count(*) FROM tasks WHERE status = 'succeeded'"
                               " AND id = ANY(%s::uuid[])", (big,)).fetchone()
        assert row is not None and row[0] < 400  # the big key is far from done
        timeline = [e for task_id in big[-20:] for e in await events(client, task_id)]
        assert {"limit": "key_concurrency"} in [e["detail"] for e in timeline
                                                if e["kind"] == "throttled"]
    assert _most_at_once(_intervals(database, "concurrency_key = 'customer-big'")) <= 2
    assert _most_at_once(_intervals(database, "true")) <= 3
    assert _statuses(database) <= {"queued", "retrying", "running", "succeeded"}  # none failed


@pytest.mark.integration
async def test_a_rate_holds_across_two_workers(own_env: Env) -> None:
    url = start_api(own_env)
    for _ in range(2):
        start_agent(own_env, "--agents", "echo")
    database = own_env.settings.database.url
    async with api_client(own_env, url) as client:
        listed = {a["name"]: a["limits"] for a in (await client.get("/v1/agents")).json()[
            "agents"]}  # the declared limits as this deployment changed them
        assert listed["echo"] == {"rate": "10/s", "tokens": None, "concurrency": None,
                                  "max_concurrency_per_key": None}
        assert listed["sleep"]["concurrency"] == 3
        assert listed["sleep"]["max_concurrency_per_key"] == 2
        ids = [(await submit(client, "echo", {"n": n}))["id"] for n in range(40)]
        for task_id in ids:
            assert (await wait_for(client, task_id, timeout_s=60))["status"] == "succeeded"
    starts = sorted(start for start, _ in _intervals(database, "agent = 'echo'"))
    # 10/s with a burst of 10: the first 10 at once, the other 30 at 10 a second
    assert (starts[-1] - starts[0]).total_seconds() >= 30 / 10 * 0.8
    most_in_a_second = max(sum(1 for s in starts if t <= s < t + timedelta(seconds=1))
                           for t in starts)
    assert most_in_a_second <= 10 + 10 + 1


@pytest.mark.integration
async def test_a_spent_token_budget_makes_the_next_task_wait(own_env: Env,
                                                              fake_llm: FakeLLM) -> None:
    url = start_api(own_env)
    start_agent(own_env, "--agents", "llm", environ=own_env.with_vars(
        agent_limits="llm:tokens=600/min", llm_base_url=fake_llm.base_url))
    async with api_client(own_env, url) as client:
        prompt = " ".join(["word"] * 330)  # about 660 tokens in and out: past the 600
        first = await wait_for(client, (await submit(client, "llm", {"prompt": prompt}))["id"])
        second = await wait_for(client, (await submit(client, "llm", {"prompt": "hi"}))["id"],
                                timeout_s=30)
        assert (first["status"], second["status"]) == ("succeeded", "succeeded")
        assert second["waits"] >= 1 and second["attempts"] == 1
        kinds = [(e["kind"], e["detail"]) for e in await events(client, second["id"])]
        assert ("throttled", {"limit": "tokens"}) in kinds


@pytest.mark.integration
async def test_retry_after_from_the_model_spends_no_attempt(
        client: httpx.AsyncClient, fake_llm: FakeLLM) -> None:
    fake_llm.fail_next(429, times=2, retry_after="1")
    accepted = await submit(client, "llm", {"prompt": "come back later"}, max_attempts=1)
    done = await wait_for(client, accepted["id"], timeout_s=30)
    assert done["status"] == "succeeded" and done["waits"] == 2
    retries = [e["detail"] for e in await events(client, accepted["id"])
               if e["kind"] == "retry_scheduled"]
    assert len(retries) == 2 and all(r["attempt_given_back"] and r["delay_s"] == 1
                                     for r in retries)


@pytest.mark.integration
async def test_a_lease_is_renewed_on_the_redis_clock_and_a_slot_freed_on_release() -> None:
    import uuid

    import redis.asyncio as aioredis

    from catalog.names import RedisKeys
    from service.worker.flow import LEASE_S, FlowControl
    from tests.services import REDIS_URL

    client = aioredis.Redis.from_url(REDIS_URL)
    keys = RedisKeys(f"orch_test_flow_{uuid.uuid4().hex[:8]}:")
    try:
        flow = FlowControl(client, keys, {"sleep": Limits(concurrency=1)})
        assert await flow.admit("sleep", "task-1", None) is None
        assert await flow.admit("sleep", "task-2", None) == Wait("concurrency", 0.0)
        taken = await client.zscore(keys.running("sleep"), "task-1")
        await asyncio.sleep(0.05)
        await flow.renew()
        renewed = await client.zscore(keys.running("sleep"), "task-1")
        seconds, micros = await client.time()
        redis_now_ms = seconds * 1000 + micros // 1000
        assert taken is not None and renewed is not None and renewed > taken
        assert abs(renewed - (redis_now_ms + LEASE_S * 1000)) < 1000
        await flow.release("task-1")
        assert await flow.admit("sleep", "task-2", None) is None
    finally:
        for key in [k async for k in client.scan_iter(f"{keys.prefix}*")]:
            await client.delete(key)
        await client.aclose()
