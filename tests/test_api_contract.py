"""The HTTP contract of the API: auth, bad input, unknown ids, listing, idempotency, cancel.

Every error answer is a JSON problem (``status``, ``detail``, ``errors[].field`` when one field is
at fault) that says what is wrong and where; none of them is ever a 500.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from alerts.rules import rule_groups
from tests.services import Env, create_key, start_agent
from tests.tasks import events, kinds, submit, wait_for, wait_for_event

pytestmark = pytest.mark.integration

KNOWN_AGENTS = ["echo", "fail", "llm", "sleep", "summarize"]


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an error answer: the status code and a JSON body with a ``detail`` to act on."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = dict(response.json())
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"], body
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


@pytest.fixture
async def anonymous(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=15) as http:
        yield http


# --- authentication and scopes ---------------------------------------------------------------


async def test_request_without_a_key_is_401_and_says_how_to_send_one(
        anonymous: httpx.AsyncClient) -> None:
    body = problem(await anonymous.get("/v1/tasks"), 401)
    assert "missing API key" in body["detail"]
    assert "Authorization: Bearer <key>" in body["detail"]
    assert "orchestrator keys create" in body["detail"]


async def test_options_names_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    answer = await client.options("/v1/tasks")
    assert answer.status_code == 204 and answer.headers["Allow"] == "GET, OPTIONS, POST"
    task = await submit(client, "echo", {"options": True})
    answer = await client.options(f"/v1/tasks/{task['id']}")
    assert answer.status_code == 204 and "GET" in answer.headers["Allow"]
    assert (await client.get("/v1/tasks", params={"limit": 1})).status_code == 200  # others pass


async def test_non_bearer_authorization_header_is_401_malformed(
        anonymous: httpx.AsyncClient) -> None:
    body = problem(await anonymous.get("/v1/tasks", headers={"Authorization": "Basic x"}), 401)
    assert "malformed" in body["detail"]
    assert "Bearer <key>" in body["detail"]


async def test_unknown_key_is_401_invalid(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post("/v1/tasks", json={"agent": "echo"},
                                    headers={"Authorization": f"Bearer {uuid.uuid4().hex}"})
    assert "invalid" in problem(response, 401)["detail"]


async def test_read_only_key_can_read_but_submitting_is_403_naming_the_scope(
        env: Env, anonymous: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    # Given a key with only the tasks:read scope
    reader = {"Authorization": f"Bearer {create_key(env, 'reader', 'tasks:read')}"}
    # Then it can read
    listing = await anonymous.get("/v1/tasks", headers=reader)
    assert listing.status_code == 200, listing.text
    assert (await anonymous.get("/v1/agents", headers=reader)).status_code == 200
    # but not submit or cancel
    body = problem(await anonymous.post("/v1/tasks", json={"agent": "echo"}, headers=reader), 403)
    assert "tasks:write" in body["detail"]
    assert "'reader'" in body["detail"]
    task = await submit(client, "echo", "x")
    problem(await anonymous.post(f"/v1/tasks/{task['id']}/cancel", headers=reader), 403)
    # while a full key submits
    assert (await client.post("/v1/tasks", json={"agent": "echo"})).status_code == 202


async def test_health_endpoints_need_no_key_and_show_details_to_admins_only(
        env: Env, anonymous: httpx.AsyncClient, api_key: str) -> None:
    live = await anonymous.get("/health/live")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    assert set(live.json()) == {"status", "instance"}
    ready = await anonymous.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert set(ready.json()) == {"status", "instance"} and ready.json()["status"] == "ready"
    plain = await anonymous.get("/health/ready", headers={"Authorization": f"Bearer {api_key}"})
    assert set(plain.json()) == {"status", "instance"}
    admin = {"Authorization": f"Bearer {create_key(env, scopes='admin')}"}
    detailed = (await anonymous.get("/health/ready", headers=admin)).json()
    assert set(detailed["dependencies"]) == {"postgresql", "rabbitmq", "redis"}
    assert detailed["rate_limits"] == "enforced"


async def test_openapi_schema_needs_no_key_and_lists_the_task_endpoints(
        anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/schema")).status_code == 200
    response = await anonymous.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    for path in ("/v1/tasks", "/v1/tasks/{task_id}", "/v1/tasks/{task_id}/events",
                 "/v1/tasks/{task_id}/cancel", "/v1/tasks/{task_id}/retry", "/v1/agents"):
        assert path in paths, sorted(paths)


# --- bad input on POST /v1/tasks --------------------------------------------------------------

# (body, status, field named in errors[] or None, text the detail must contain)
BAD_SUBMISSIONS: dict[str, tuple[Any, int, str | None, str]] = {
    "a JSON list": ([{"agent": "echo"}], 400, "body", "Expected `object`, got `array`"),
    "a JSON string": ("echo", 400, "body", "Expected `object`, got `str`"),
    "agent missing": ({"input": 1}, 400, "body.agent", "missing required field `agent`"),
    "agent empty": ({"agent": ""}, 400, "body.agent", "length >= 1"),
    "agent not a string": ({"agent": 7}, 400, "body.agent", "Expected `str`, got `int`"),
    "priority of the wrong type": ({"agent": "echo", "priority": "high"}, 400, "body.priority",
                                   "Expected `int`, got `str`"),
    "priority out of range": ({"agent": "echo", "priority": 42}, 400, "body.priority",
                              "<= 9"),
    "priority negative": ({"agent": "echo", "priority": -1}, 400, "body.priority", ">= 0"),
    "unknown field": ({"agent": "echo", "colour": 1}, 400, "body.colour",
                      "unknown field `colour`"),
    "negative timeout": ({"agent": "echo", "timeout_s": -5}, 400, "body.timeout_s", "> 0"),
    "zero timeout": ({"agent": "echo", "timeout_s": 0}, 400, "body.timeout_s", "> 0"),
    "timeout above the limit": ({"agent": "echo", "timeout_s": 1e9}, 400, "body.timeout_s",
                                "at most 86400"),
    "zero attempts": ({"agent": "echo", "max_attempts": 0}, 400, "body.max_attempts", ">= 1"),
    "too many attempts": ({"agent": "echo", "max_attempts": 1000}, 400, "body.max_attempts",
                          "<= 100"),
}


@pytest.mark.parametrize("case", list(BAD_SUBMISSIONS))
async def test_invalid_submission_is_rejected_naming_the_field(
        client: httpx.AsyncClient, case: str) -> None:
    payload, status, field, text = BAD_SUBMISSIONS[case]
    body = problem(await client.post("/v1/tasks", json=payload), status)
    assert field in fields(body), body
    assert field in body["detail"] and text in body["detail"], body


async def test_text_postgresql_cannot_store_is_422_and_spares_concurrent_submissions(
        client: httpx.AsyncClient) -> None:
    good = [client.post("/v1/tasks", json={"agent": "echo", "input": {"n": n}})
            for n in range(8)]
    bad = client.post("/v1/tasks", json={"agent": "echo", "input": {"text": "a\u0000b"}})
    *answers, refused = await asyncio.gather(*good, bad)
    assert [a.status_code for a in answers] == [202] * 8
    assert [a.json()["input"] for a in answers] == [{"n": n} for n in range(8)]
    body = problem(refused, 422)
    assert "cannot be stored" in body["detail"] and "\\u0000" in body["detail"], body


async def test_malformed_json_is_400_saying_the_body_is_not_json(
        client: httpx.AsyncClient) -> None:
    for raw in (b'{"agent": ', b'{"agent": "echo", "timeout_s": NaN}', b"\xff\xfe"):
        response = await client.post("/v1/tasks", content=raw,
                                     headers={"Content-Type": "application/json"})
        assert "request body is not valid JSON" in problem(response, 400)["detail"]


async def test_a_body_that_is_not_declared_json_is_415_saying_which_content_type(
        client: httpx.AsyncClient) -> None:
    for content_type in ("application/x-www-form-urlencoded", "text/plain", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = await client.post("/v1/tasks", content=b'{"agent": "echo"}', headers=headers)
        assert "Content-Type: application/json" in problem(response, 415)["detail"]
    vendor = await client.post("/v1/tasks", content=b'{"agent": "echo"}',
                               headers={"Content-Type": "application/merge-patch+json"})
    assert vendor.status_code == 202


async def test_empty_body_is_400_saying_a_json_object_is_needed(
        client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tasks", content=b"",
                                 headers={"Content-Type": "application/json"})
    body = problem(response, 400)
    assert "body is empty" in body["detail"] and '{"agent": "echo"}' in body["detail"]


async def test_unknown_agent_is_422_listing_the_known_agents(client: httpx.AsyncClient) -> None:
    body = problem(await client.post("/v1/tasks", json={"agent": "translate"}), 422)
    assert "unknown agent 'translate'" in body["detail"]
    assert body["known_agents"] == KNOWN_AGENTS
    assert ", ".join(KNOWN_AGENTS) in body["detail"]


async def test_body_over_the_size_limit_is_413_saying_the_limit(
        client: httpx.AsyncClient, env: Env) -> None:
    limit = env.settings.api.max_body_bytes
    assert limit == 1_048_576
    big = {"agent": "echo", "input": "x" * (limit + limit // 10)}
    body = problem(await client.post("/v1/tasks", json=big), 413)
    assert f"limit is {limit} bytes" in body["detail"]


async def test_overlong_idempotency_key_is_400_naming_the_header(
        client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tasks", json={"agent": "echo"},
                                 headers={"Idempotency-Key": "k" * 201})
    body = problem(response, 400)
    assert fields(body) == ["header.idempotency_key"]
    assert "length <= 200" in body["detail"]


# --- unknown and malformed task ids -----------------------------------------------------------

TASK_ROUTES = [("GET", "/v1/tasks/{}"), ("GET", "/v1/tasks/{}/events"),
               ("POST", "/v1/tasks/{}/cancel"), ("POST", "/v1/tasks/{}/retry")]


@pytest.mark.parametrize(("method", "route"), TASK_ROUTES)
async def test_task_id_that_is_not_a_uuid_is_400_on_the_path(
        client: httpx.AsyncClient, method: str, route: str) -> None:
    body = problem(await client.request(method, route.format("not-a-uuid")), 400)
    assert fields(body) == ["path.task_id"]
    assert "expected a UUID" in body["detail"]


@pytest.mark.parametrize(("method", "route"), TASK_ROUTES)
async def test_unknown_task_id_is_404_saying_it_does_not_exist(
        client: httpx.AsyncClient, method: str, route: str) -> None:
    task_id = str(uuid.uuid4())
    body = problem(await client.request(method, route.format(task_id)), 404)
    assert body["detail"] == f"task {task_id} does not exist"


# --- listing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "field", "text"), [
    ({"status": "bogus"}, "query.status", "Invalid enum value 'bogus'"),
    ({"limit": 0}, "query.limit", ">= 1"),
    ({"limit": 10000}, "query.limit", "<= 500"),
    ({"limit": "many"}, "query.limit", "Expected `int`"),
    ({"cursor": "garbage"}, "query.cursor", "not a cursor"),
    ({"cursor": "!!!"}, "query.cursor", "not a cursor"),
])
async def test_invalid_list_query_is_400_naming_the_parameter(
        client: httpx.AsyncClient, params: dict[str, Any], field: str, text: str) -> None:
    body = problem(await client.get("/v1/tasks", params=params), 400)
    assert fields(body) == [field]
    assert field in body["detail"] and text in body["detail"]


async def test_list_of_an_unknown_agent_is_422_listing_the_known_agents(
        client: httpx.AsyncClient) -> None:
    body = problem(await client.get("/v1/tasks", params={"agent": "nope"}), 422)
    assert body["known_agents"] == KNOWN_AGENTS


def created(task: dict[str, Any]) -> tuple[datetime, str]:
    return datetime.fromisoformat(task["created_at"]), task["id"]


async def test_pages_walk_every_task_once_newest_first(client: httpx.AsyncClient) -> None:
    # Given five new echo tasks
    mine = [(await submit(client, "echo", {"page": n}))["id"] for n in range(5)]
    # When the echo tasks are listed two at a time, following next_cursor to the end
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"agent": "echo", "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/v1/tasks", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10_000
    # Then every task came once, all echo, newest first, mine among them in reverse order
    ids = [t["id"] for t in seen]
    assert len(ids) == len(set(ids))
    assert {t["agent"] for t in seen} == {"echo"}
    assert [created(t) for t in seen] == sorted((created(t) for t in seen), reverse=True)
    assert [i for i in ids if i in mine] == mine[::-1]
    assert ids[:5] == mine[::-1]  # nothing newer was submitted meanwhile


async def test_status_filter_returns_only_that_status(client: httpx.AsyncClient) -> None:
    # Given a succeeded echo task and a cancelled sleep task
    done = await wait_for(client, (await submit(client, "echo", "done"))["id"])
    assert done["status"] == "succeeded"
    held = await submit(client, "sleep", {"seconds": 1})
    assert (await client.post(f"/v1/tasks/{held['id']}/cancel")).status_code == 200
    for status, task_id in (("succeeded", done["id"]), ("cancelled", held["id"])):
        response = await client.get("/v1/tasks", params={"status": status, "limit": 500})
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert {t["status"] for t in items} == {status}
        assert task_id in [t["id"] for t in items]
    # and status and agent filters combine
    response = await client.get("/v1/tasks", params={"status": "cancelled", "agent": "sleep"})
    items = response.json()["items"]
    assert {(t["status"], t["agent"]) for t in items} == {("cancelled", "sleep")}
    assert held["id"] in [t["id"] for t in items]


# --- idempotency ------------------------------------------------------------------------------


async def test_same_idempotency_key_and_body_replays_the_original_task(
        client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": f"contract-{uuid.uuid4()}"}
    body = {"agent": "echo", "input": {"order": 1}, "priority": 3}
    first = await client.post("/v1/tasks", json=body, headers=key)
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    second = await client.post("/v1/tasks", json=body, headers=key)
    assert second.status_code == 200, second.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Location"] == f"/v1/tasks/{first.json()['id']}"
    assert second.json()["idempotency_key"] == key["Idempotency-Key"]


async def test_same_idempotency_key_with_another_body_is_409_naming_the_original(
        client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": f"contract-{uuid.uuid4()}"}
    first = await client.post("/v1/tasks", json={"agent": "echo", "input": 1}, headers=key)
    assert first.status_code == 202, first.text
    original = first.json()["id"]
    conflict = await client.post("/v1/tasks", json={"agent": "echo", "input": 2}, headers=key)
    body = problem(conflict, 409)
    assert body["task_id"] == original
    assert original in body["detail"] and "different body" in body["detail"]


async def test_concurrent_submissions_with_one_idempotency_key_make_one_task(
        client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": f"contract-{uuid.uuid4()}"}
    answers = await asyncio.gather(*(
        client.post("/v1/tasks", json={"agent": "echo", "input": "once"}, headers=key)
        for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [200] * 5 + [202]
    assert len({a.json()["id"] for a in answers}) == 1


async def test_different_idempotency_keys_make_different_tasks(
        client: httpx.AsyncClient) -> None:
    body = {"agent": "echo", "input": "same"}
    ids = set()
    for _ in range(2):
        response = await client.post("/v1/tasks", json=body,
                                     headers={"Idempotency-Key": f"contract-{uuid.uuid4()}"})
        assert response.status_code == 202, response.text
        ids.add(response.json()["id"])
    assert len(ids) == 2


# --- cancel -----------------------------------------------------------------------------------


async def test_cancelled_queued_task_never_runs(client: httpx.AsyncClient, env: Env) -> None:
    # Given a sleep task whose message is in its queue, with no worker serving sleep
    task = await submit(client, "sleep", {"seconds": 0.1})
    await wait_for_event(client, task["id"], "published")
    # When it is cancelled
    response = await client.post(f"/v1/tasks/{task['id']}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancel_requested"] is True
    # Then cancelling again is a conflict naming its status
    body = problem(await client.post(f"/v1/tasks/{task['id']}/cancel"), 409)
    assert "status 'cancelled'" in body["detail"]
    # And a worker that receives the message drops it without running the task
    worker = start_agent(env, "--agents", "sleep")
    try:
        timeline = await wait_for_event(client, task["id"], "duplicate_dropped")
        assert "started" not in kinds(timeline)
        assert kinds(timeline)[:3] == ["submitted", "published", "cancelled"]
        after = (await client.get(f"/v1/tasks/{task['id']}")).json()
        assert after["status"] == "cancelled"
        assert after["attempts"] == 0 and after["started_at"] is None
    finally:
        worker.terminate()


async def test_running_task_is_cancelled_cooperatively(client: httpx.AsyncClient,
                                                       env: Env) -> None:
    worker = start_agent(env, "--agents", "sleep")
    try:
        # Given a long sleep task that a worker is running
        task = await submit(client, "sleep", {"seconds": 30})
        await wait_for(client, task["id"], {"running"})
        # When it is cancelled
        response = await client.post(f"/v1/tasks/{task['id']}/cancel")
        assert response.status_code == 200, response.text
        assert response.json()["cancel_requested"] is True
        assert response.json()["status"] == "running"
        # Then the agent stops and the task ends cancelled within seconds, never succeeded
        final = await wait_for(client, task["id"], timeout_s=10)
        assert final["status"] == "cancelled", final
        assert final["result"] is None
        timeline = kinds(await events(client, task["id"]))
        assert "succeeded" not in timeline
        assert timeline.index("started") < timeline.index("cancel_requested") \
            < timeline.index("cancelled")
    finally:
        worker.terminate()


# --- reading a task ---------------------------------------------------------------------------


async def test_task_read_has_every_field_and_the_defaults_from_settings(
        client: httpx.AsyncClient, env: Env) -> None:
    # Given a task submitted without attempts or timeout
    response = await client.post("/v1/tasks", json={"agent": "echo", "input": {"k": "v"}})
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    assert response.headers["Location"] == f"/v1/tasks/{task_id}"
    # When it is read
    read = await client.get(f"/v1/tasks/{task_id}")
    assert read.status_code == 200, read.text
    task = read.json()
    # Then it has every documented field and the defaults from the settings
    assert set(task) >= {"id", "agent", "status", "input", "priority", "attempts", "max_attempts",
                         "timeout_s", "result", "error", "trace_id", "idempotency_key",
                         "cancel_requested", "worker_id", "created_at", "started_at",
                         "finished_at", "updated_at", "published_at", "links"}
    assert uuid.UUID(task["id"]) and task["id"] == task_id
    assert task["agent"] == "echo" and task["input"] == {"k": "v"}
    assert task["status"] in {"queued", "running", "succeeded"}
    assert task["priority"] == 0
    assert task["max_attempts"] == env.settings.tasks.max_attempts == 3
    assert task["timeout_s"] == env.settings.tasks.timeout_s == 300.0
    assert task["cancel_requested"] is False
    datetime.fromisoformat(task["created_at"])
    base = f"/v1/tasks/{task_id}"
    assert task["links"] == {"self": base, "events": f"{base}/events",
                             "cancel": f"{base}/cancel", "retry": f"{base}/retry"}


async def test_task_read_keeps_the_given_priority_attempts_and_timeout(
        client: httpx.AsyncClient) -> None:
    accepted = await submit(client, "echo", None, priority=5, max_attempts=5, timeout_s=12.5)
    task = (await client.get(f"/v1/tasks/{accepted['id']}")).json()
    assert (task["priority"], task["max_attempts"], task["timeout_s"]) == (5, 5, 12.5)
    assert task["input"] is None


async def test_the_api_serves_the_runbook_with_a_section_per_alert(
        anonymous: httpx.AsyncClient) -> None:
    page = await anonymous.get("/runbook")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    alerts = [r for g in rule_groups()["groups"] for r in g["rules"] if "alert" in r]
    assert alerts, "nothing to check"
    for rule in alerts:
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert f'id="{anchor}"' in page.text, rule["alert"]
