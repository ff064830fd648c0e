"""A valid input is never "corrupt": the checksum is taken over the form PostgreSQL's jsonb
stores (``service.canonical``), and an input that grows past the body limit once stored (1e308
is 309 digits) is refused with a 413 instead of being stored and served 50 times larger."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.canonical import canonical, stored_json
from service.db.migrate import migrate
from service.db.pool import open_pool
from service.db.runs import Run, RunStore, new_run_id
from service.db.tasks import NewTask, TaskStore
from service.domain import input_checksum, input_intact, storable_input
from service.errors import InputTooLarge
from tests.services import Env, Proc
from tests.tasks import events, submit, wait_for

BAD_BEFORE = [-0.0, 1e16, 1e22, 1e308]
"""Inputs the worker used to kill as "data corruption" (DataIntegrityCheckFailed)."""

SPECIAL_FLOATS = [-0.0, 0.0, 1.0, 0.1, 1e15, 9999999999999998.0, 1e16, 1.5e16, 1e22, 1e23,
                  1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324,
                  2.2250738585072014e-308, 1e-5, 9.99e-6, 1.5e-7, 123.456e-300]
HUGE_INTS = [2**63, 2**64, -(2**64) - 1, 10**100, 10**4299, -(10**4299) + 1]
"""Up to 4300 digits: what msgspec (the API's decoder) and json.loads (psycopg's) accept."""

scalars = (st.none() | st.booleans() | st.integers() | st.sampled_from(HUGE_INTS)
           | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(SPECIAL_FLOATS)
           | st.text(max_size=12))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=16)


def has_nul(value: Any) -> bool:
    """Text holding ``\\u0000``, which jsonb refuses."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def exact(value: Any) -> str:
    """``value`` as JSON text that tells 1 from 1.0 and 0.0 from -0.0."""
    return json.dumps(value, sort_keys=True)


# --- jsonb's rules, against the real PostgreSQL ------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(("sent", "stored"), [
    ("1e16", "10000000000000000"), ("1.5e16", "15000000000000000"),
    ("1e-5", "0.00001"), ("1.5e-7", "0.00000015"), ("0.1e1", "1"), ("1.0e1", "10"),
    ("1.0", "1.0"), ("1.50", "1.50"), ("10.0e-1", "1.00"),
    ("-0", "0"), ("-0.0", "0.0"), ("12345678901234567890", "12345678901234567890"),
    ("1e308", "1" + "0" * 308), ("5e-324", "0." + "0" * 323 + "5"),
    ('{"b": 1, "a": 2, "a": 3}', '{"a": 3, "b": 1}'),
])
def test_jsonb_writes_numbers_out_in_full_and_zero_without_a_sign(
        env: Env, sent: str, stored: str) -> None:
    with psycopg.connect(env.settings.database.url) as conn:
        row = conn.execute("SELECT %s::jsonb::text", (sent,)).fetchone()
    assert row is not None and row[0] == stored


@pytest.mark.integration
@pytest.mark.parametrize("text", ['"\\u0000"', '"\\ud800"'])
def test_jsonb_refuses_nul_and_lone_surrogates(env: Env, text: str) -> None:
    with psycopg.connect(env.settings.database.url) as conn, \
            pytest.raises(psycopg.DataError):
        conn.execute("SELECT %s::jsonb", (text,))


# --- the canonical form ------------------------------------------------------------------


@pytest.mark.unit
def test_canonical_numbers_are_those_jsonb_hands_back() -> None:
    assert exact(canonical(-0.0)) == "0.0"
    assert exact(canonical([1e16, 1.5e16, 1e23])) == "[10000000000000000, 15000000000000000, "\
        "100000000000000000000000]"  # 1e23 as its digits spell it, not int(1e23)
    assert exact(canonical({"a": (1.0, 0.1, 5e-324, 10**30, True, None, "1e16")})) == \
        '{"a": [1.0, 0.1, 5e-324, 1000000000000000000000000000000, true, null, "1e16"]}'
    assert canonical(math.nan) is None and canonical([math.inf]) == [None]


@pytest.mark.unit
def test_the_checksum_of_an_unaffected_input_is_the_one_taken_before() -> None:
    # Given inputs without numbers jsonb rewrites (tasks queued before this change)
    for payload in ({"seconds": 1}, [1.0, 0.5, "1e16", {"k": None}], "text", 2**70):
        before = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        # Then their checksum is unchanged
        assert input_checksum(payload) == hashlib.sha256(before.encode()).hexdigest()
    # and a rewritten number hashes as what jsonb stores
    assert input_checksum({"n": 1e16, "z": -0.0}) == input_checksum({"n": 10**16, "z": 0.0})


@pytest.mark.unit
def test_the_stored_size_counts_numbers_written_out_in_full() -> None:
    assert stored_json([1e308]).size == 2 + 309
    assert stored_json(5e-324).size == 326
    assert stored_json({"a": "é"}).size == len('{"a":"é"}'.encode())
    with pytest.raises(InputTooLarge, match=r"311 bytes .* limit of 100 bytes"):
        storable_input([1e308], 100)


# --- the property: what is submitted never trips the worker's check ----------------------


@pytest.fixture
async def stores(own_env: Env) -> AsyncIterator[tuple[TaskStore, RunStore]]:
    """The API's and a worker's task stores on a database of the test's own (no relay
    publishes these tasks, no worker runs them)."""
    pool = await open_pool(own_env.settings.database, name="test-canonical")
    try:
        await migrate(pool)
        yield TaskStore(pool), RunStore(pool, "property-test")
    finally:
        await pool.close()


@pytest.mark.integration
@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(payload=json_values)
async def test_any_submitted_input_read_back_by_a_worker_passes_its_integrity_check(
        stores: tuple[TaskStore, RunStore], payload: Any) -> None:
    tasks, runs = stores
    # Given an input as the API decodes it from a request body
    decoded = msgspec.json.decode(msgspec.json.encode(payload))
    # When it is prepared and submitted as the API does
    prepared = storable_input(decoded, 1_048_576)
    new = NewTask(agent="echo", input=prepared, tenant="property", priority=0, max_attempts=1,
                  timeout_s=10.0, checksum=input_checksum(prepared))
    if has_nul(decoded):  # Then text with \u0000 is refused (the API answers 422)
        with pytest.raises(psycopg.DataError):
            await tasks.submit(new)
        return
    task, created = await tasks.submit(new)
    assert created
    # and the worker's claim reads back an input that matches its checksum
    run = await runs.claim(task.id, redelivered=False, run_id=new_run_id())
    assert isinstance(run, Run)
    assert input_intact(run.task), (payload, run.task.input)
    # which is exactly what was prepared, and what the API answers with
    assert exact(run.task.input) == exact(prepared) == exact(canonical(decoded))
    assert exact(task.input) == exact(prepared)


# --- end to end: the inputs that paged, through the real API and worker ------------------


def integrity_failures(worker: Proc) -> float:
    text = httpx.get(worker.metrics_url(), timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("orchestrator_integrity_check_failures_total{"))


@pytest.mark.integration
async def test_the_inputs_that_paged_run_and_return_what_postgresql_stores(
        client: httpx.AsyncClient, worker: Proc) -> None:
    # Given the worker's integrity failures so far
    failures_before = integrity_failures(worker)
    # When the inputs once killed as "data corruption" are submitted, alone and together
    payloads: list[Any] = [*BAD_BEFORE, {"all": BAD_BEFORE, "more": [1e23, 5e-324, 1.5e-7]}]
    submitted = [await submit(client, "echo", p) for p in payloads]
    # Then every task succeeds and returns its input as PostgreSQL stores it
    for payload, task in zip(payloads, submitted, strict=True):
        done = await wait_for(client, task["id"])
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 1
        assert exact(done["result"]) == exact(canonical(payload)) == exact(done["input"])
        assert "integrity" not in json.dumps(await events(client, task["id"]))
    # and the integrity check never fired
    assert integrity_failures(worker) == failures_before
    assert "does not match its checksum" not in worker.output()


@pytest.mark.integration
@pytest.mark.parametrize(("number", "count"), [("1e308", 20_000), ("5e-324", 5_000)])
async def test_an_input_that_grows_past_the_body_limit_when_stored_is_a_413(
        client: httpx.AsyncClient, env: Env, number: str, count: int) -> None:
    # Given a small body whose numbers PostgreSQL writes out in full
    body = '{"agent": "echo", "input": [' + ",".join([number] * count) + "]}"
    assert len(body) < 200_000
    # When it is submitted
    response = await client.post("/v1/tasks", content=body.encode(),
                                 headers={"Content-Type": "application/json"})
    # Then it is refused, saying how large it would be stored and what the limit is
    assert response.status_code == 413, response.text[:300]
    detail = response.json()["detail"]
    limit = env.settings.api.max_body_bytes
    assert f"above the limit of {limit} bytes" in detail and "ORCH_MAX_BODY_BYTES" in detail


@pytest.mark.integration
async def test_text_with_nul_is_a_422_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tasks", json={"agent": "echo", "input": {"a": "x\x00"}})
    assert response.status_code == 422, response.text
    assert "\\u0000" in response.json()["detail"]
