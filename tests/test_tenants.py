"""Tenants and the key life cycle, against the real API and PostgreSQL: another tenant's task
is a 404 everywhere, idempotency keys are per tenant, admin keys see everything, keys are
listed, revoked (refused within a second), rotated and expire, unknown scopes are refused,
and a revoked development key is never revived."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from service.db.keys import KeySpec, KeyStore
from service.db.pool import open_pool
from service.db.tasks import NewTask, TaskStore
from service.domain import input_checksum
from tests.services import ORCHESTRATOR, Env, Proc, create_key

pytestmark = pytest.mark.integration


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def http(api_url: str, worker: Proc) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=15) as client:
        yield client


def keys_cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ORCHESTRATOR, "keys", *args], env={**os.environ, **env.environ},
                          capture_output=True, text=True, timeout=60)


async def test_another_tenants_task_is_not_found_anywhere(env: Env,
                                                          http: httpx.AsyncClient) -> None:
    alice = bearer(create_key(env, tenant="alice"))
    bob = bearer(create_key(env, tenant="bob"))
    admin = bearer(create_key(env, scopes="admin", tenant="ops"))
    answer = await http.post("/v1/tasks", json={"agent": "echo", "input": {"secret": "a"}},
                             headers=alice)
    assert answer.status_code == 202 and answer.json()["tenant"] == "alice"
    task = answer.json()["id"]
    # Then bob can neither read, follow, cancel nor requeue it: it does not exist for him
    for method, path in (("GET", f"/v1/tasks/{task}"), ("GET", f"/v1/tasks/{task}/events"),
                         ("POST", f"/v1/tasks/{task}/cancel"),
                         ("POST", f"/v1/tasks/{task}/retry")):
        seen = await http.request(method, path, headers=bob)
        assert seen.status_code == 404, (path, seen.text)
        assert seen.json()["detail"] == f"task {task} does not exist"
    listed = await http.get("/v1/tasks", params={"limit": 500}, headers=bob)
    assert task not in {t["id"] for t in listed.json()["items"]}
    # while alice, and an operator's admin key, see it
    assert (await http.get(f"/v1/tasks/{task}", headers=alice)).status_code == 200
    assert (await http.get(f"/v1/tasks/{task}/events", headers=admin)).status_code == 200
    everyone = await http.get("/v1/tasks", params={"limit": 500}, headers=admin)
    assert task in {t["id"] for t in everyone.json()["items"]}


async def test_idempotency_keys_belong_to_their_tenant(env: Env,
                                                       http: httpx.AsyncClient) -> None:
    alice = bearer(create_key(env, tenant="alice"))
    bob = bearer(create_key(env, tenant="bob"))
    reused = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    first = await http.post("/v1/tasks", json={"agent": "echo", "input": 1},
                            headers={**alice, **reused})
    # bob's different request under the same key is a new task of his, not a 409 naming hers
    other = await http.post("/v1/tasks", json={"agent": "echo", "input": 2},
                            headers={**bob, **reused})
    assert first.status_code == other.status_code == 202
    assert first.json()["id"] != other.json()["id"]
    again = await http.post("/v1/tasks", json={"agent": "echo", "input": 1},
                            headers={**alice, **reused})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


async def test_an_idempotency_key_expires(env: Env, api_url: str) -> None:
    pool = await open_pool(env.settings.database, name="test")
    try:
        store = TaskStore(pool, idempotency_ttl_s=1)
        new = NewTask("echo", {"n": 1}, "expiry", 0, 1, 10.0, input_checksum({"n": 1}),
                      idempotency_key="same")
        first, created = await store.submit(new)
        replay, replayed_created = await store.submit(new)
        await asyncio.sleep(1.2)
        later, later_created = await store.submit(new)
    finally:
        await pool.close()
    assert created and not replayed_created and replay.id == first.id
    assert later_created and later.id != first.id


async def test_priorities_above_the_ceiling_need_their_scope(env: Env,
                                                             http: httpx.AsyncClient) -> None:
    plain = bearer(create_key(env))
    refused = await http.post("/v1/tasks", json={"agent": "echo", "priority": 9}, headers=plain)
    assert refused.status_code == 403 and "tasks:priority" in refused.json()["detail"]
    allowed = bearer(create_key(env, scopes="tasks:write,tasks:read,tasks:priority"))
    accepted = await http.post("/v1/tasks", json={"agent": "echo", "priority": 9},
                               headers=allowed)
    assert accepted.status_code == 202 and accepted.json()["priority"] == 9


async def test_revoked_and_rotated_keys_are_refused_within_a_second(
        env: Env, http: httpx.AsyncClient) -> None:
    name = f"revoked-{uuid.uuid4().hex[:6]}"
    key = create_key(env, name)
    assert (await http.get("/v1/tasks", headers=bearer(key))).status_code == 200
    revoke = keys_cli(env, "revoke", name)
    revoked_at = time.monotonic()
    assert revoke.returncode == 0, revoke.stderr
    while (await http.get("/v1/tasks", headers=bearer(key))).status_code != 401:
        assert time.monotonic() - revoked_at < 1.5, "a revoked key still works"
        await asyncio.sleep(0.02)
    print(f"\nrevoke -> 401 in {(time.monotonic() - revoked_at) * 1000:.0f} ms")

    name = f"rotated-{uuid.uuid4().hex[:6]}"
    old = create_key(env, name, tenant="rotating")
    rotated = keys_cli(env, "rotate", name, "--json")
    assert rotated.returncode == 0, rotated.stderr
    new = json.loads(rotated.stdout)
    assert new["tenant"] == "rotating" and new["key"] != old
    await asyncio.sleep(1.1)
    assert (await http.get("/v1/tasks", headers=bearer(old))).status_code == 401
    assert (await http.get("/v1/tasks", headers=bearer(new["key"]))).status_code == 200


async def test_keys_are_listed_without_values_and_expire(env: Env,
                                                         http: httpx.AsyncClient) -> None:
    name = f"short-{uuid.uuid4().hex[:6]}"
    key = create_key(env, name, "tasks:read", "--expires-in", "2s", "--rate-limit", "50/s")
    assert (await http.get("/v1/tasks", headers=bearer(key))).status_code == 200
    listed = keys_cli(env, "list", "--json")
    mine = next(k for k in json.loads(listed.stdout) if k["name"] == name)
    assert mine["rate_limit"] == "50/s" and mine["expires_at"] and mine["last_used_at"]
    assert key not in listed.stdout and "key" not in mine
    await asyncio.sleep(3.1)
    assert (await http.get("/v1/tasks", headers=bearer(key))).status_code == 401


def test_bad_key_requests_are_refused_with_what_to_fix(env: Env, api_url: str) -> None:
    unknown = keys_cli(env, "create", f"k-{uuid.uuid4().hex[:6]}", "--scopes", "tasks:rule")
    assert unknown.returncode == 2 and "unknown scope(s) tasks:rule" in unknown.stderr
    name = f"twice-{uuid.uuid4().hex[:6]}"
    create_key(env, name)
    twice = keys_cli(env, "create", name)
    assert twice.returncode == 2 and f"a live key named {name!r} exists" in twice.stderr
    odd = keys_cli(env, "create", 'quote"and\\slash', "--json")
    assert odd.returncode == 0 and json.loads(odd.stdout)["name"] == 'quote"and\\slash'
    assert keys_cli(env, "revoke", "no-such-key").returncode == 2


async def test_admin_keys_manage_keys_over_http(env: Env, http: httpx.AsyncClient) -> None:
    admin = bearer(create_key(env, scopes="admin", tenant="ops"))
    plain = bearer(create_key(env))
    assert (await http.get("/v1/admin/keys", headers=plain)).status_code == 403
    name = f"http-{uuid.uuid4().hex[:6]}"
    made = await http.post("/v1/admin/keys", json={"name": name, "tenant": "web"},
                           headers=admin)
    assert made.status_code == 201 and made.json()["key"].startswith("orch_")
    bad = await http.post("/v1/admin/keys", json={"name": "x", "scopes": ["root"]},
                          headers=admin)
    assert bad.status_code == 422 and "unknown scope" in bad.json()["detail"]
    listed = (await http.get("/v1/admin/keys", headers=admin)).json()["keys"]
    assert any(k["name"] == name and k["key"] is None for k in listed)
    rotated = await http.post(f"/v1/admin/keys/{name}/rotate", headers=admin)
    assert rotated.status_code == 200 and rotated.json()["key"] != made.json()["key"]
    revoked = await http.post(f"/v1/admin/keys/{name}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    await asyncio.sleep(1.1)
    assert (await http.get("/v1/tasks", headers=bearer(rotated.json()["key"]))).status_code \
        == 401
    assert (await http.post(f"/v1/admin/keys/{name}/revoke", headers=admin)).status_code == 404


async def test_a_revoked_development_key_is_never_revived(env: Env, api_url: str) -> None:
    pool = await open_pool(env.settings.database, name="test")
    try:
        store = KeyStore(pool)
        value = f"orch_dev-{uuid.uuid4().hex}"
        assert await store.ensure_dev(value)
        assert (await store.lookup(value)) is not None
        await store.revoke("dev")
        assert not await store.ensure_dev(value)  # the runner makes a new one instead
        assert await store.lookup(value) is None
        fresh = f"orch_dev-{uuid.uuid4().hex}"
        assert await store.ensure_dev(fresh)
        live = {k.name: k for k in await store.list()}
        assert live["dev"].is_admin and (await store.lookup(fresh)) is not None
        _, other = await store.create(KeySpec(f"plain-{uuid.uuid4().hex[:6]}"))
        assert other.tenant == other.name and not other.is_admin
    finally:
        await pool.close()


async def test_list_items_leave_out_inputs_and_results_unless_asked(
        env: Env, http: httpx.AsyncClient, api_url: str) -> None:
    key = bearer(create_key(env, tenant=f"big-{uuid.uuid4().hex[:6]}"))
    big = "x" * 400_000
    for _ in range(12):
        answer = await http.post("/v1/tasks", json={"agent": "echo", "input": big}, headers=key)
        assert answer.status_code == 202
    page = await http.get("/v1/tasks", params={"limit": 500}, headers=key)
    assert len(page.json()["items"]) == 12 and len(page.content) < 20_000
    assert all("input" not in t and "result" not in t for t in page.json()["items"])
    # asked for, the inputs come within the page budget (4 MiB): the page ends early
    full = await http.get("/v1/tasks", params={"limit": 500, "include": "input,result"},
                          headers=key)
    items = full.json()["items"]
    assert 1 <= len(items) < 12 and all(t["input"] == big for t in items)
    assert len(full.content) < 4_194_304 + 500_000 and full.json()["next_cursor"]
    print(f"\nlist of 12 tasks with 400 KB inputs: {len(page.content) / 1024:.1f} KiB;"
          f" with include=input,result: {len(items)} items, {len(full.content) / 1024:.0f} KiB")
    wrong = await http.get("/v1/tasks", params={"include": "everything"}, headers=key)
    assert wrong.status_code == 400 and "include" in wrong.json()["detail"]
