"""Completion callbacks: the final task is POSTed to ``callback_url``, signed with the tenant's
secret, retried with backoff until the receiver takes it (exactly one accepted delivery), never
lost across an API restart, recorded on the timeline; private addresses are refused unless
``ORCH_CALLBACK_ALLOW_PRIVATE`` allows them (the receiver here is on loopback, so it does)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from typing import Any

import httpx
import pytest

from service.callback_target import CallbackRefused, check_url, internal, resolve
from service.signing import SIGNATURE_HEADER, sign, verify
from tests.callback_receiver import running_receiver
from tests.services import Env, api_client, free_port, start_agent, start_api
from tests.tasks import events, kinds, submit, wait_for

OWN_ENV = {"callback_allow_private": "true", "callback_base_delay_s": "0.3",
           "callback_interval_s": "0.1"}


@pytest.mark.unit
def test_a_signature_verifies_with_its_secret_only_and_only_while_fresh() -> None:
    body = b'{"event": "task.succeeded"}'
    header = sign(body, ["whsec_new", "whsec_old"], timestamp=1_800_000_000)
    assert header.startswith("t=1800000000,v1=") and header.count("v1=") == 2
    assert verify(body, header, "whsec_new", now=1_800_000_100)
    assert verify(body, header, "whsec_old", now=1_800_000_100)  # both sign after a rotation
    assert not verify(body, header, "whsec_other", now=1_800_000_100)
    assert not verify(body + b" ", header, "whsec_new", now=1_800_000_100)
    assert not verify(body, header, "whsec_new", now=1_800_000_000 + 301)  # a replay


@pytest.mark.unit
@pytest.mark.parametrize(("url", "allowed"), [
    ("https://hooks.example.com/done?token=1", True), ("http://203.0.113.9:8080/x", False),
    ("http://127.0.0.1:9000/x", False), ("http://10.1.2.3/", False),
    ("http://169.254.169.254/latest/meta-data", False), ("http://localhost/", False),
    ("http://api.localhost/", False), ("http://0.0.0.0/", False),
    ("ftp://example.com/", False), ("http://user:pw@example.com/", False),
    ("http://example.com:99999/", False)])
def test_callback_urls_are_judged_before_any_lookup(url: str, allowed: bool) -> None:
    assert (check_url(url, allow_private=False) is None) is allowed
    assert (check_url(url, allow_private=True) is None) is (url.startswith("http")
                                                             and "@" not in url
                                                             and "99999" not in url)


@pytest.mark.unit
async def test_a_host_that_resolves_to_a_private_address_is_refused_at_delivery(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def private_answer(host: str, port: int, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(loop, "getaddrinfo", private_answer)
    with pytest.raises(CallbackRefused, match="resolves to a loopback or private address"):
        await resolve("https://rebinding.example.com/hook", allow_private=False)
    target = await resolve("https://rebinding.example.com/hook", allow_private=True)
    assert (target.address, target.port, target.host) == ("10.0.0.7", 443,
                                                          "rebinding.example.com")
    assert internal(ipaddress.ip_address("::ffff:127.0.0.1"))


async def _secret(client: httpx.AsyncClient) -> str:
    answer = await client.get("/v1/callbacks/secret")
    assert answer.status_code == 200, answer.text
    assert answer.json()["signature_header"] == SIGNATURE_HEADER
    return str(answer.json()["secret"])


async def _settled(client: httpx.AsyncClient, task_id: str, timeout_s: float = 30) -> dict[
        str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        task = (await client.get(f"/v1/tasks/{task_id}")).json()
        if task["callback_state"] not in (None, "pending"):
            return dict(task)
        await asyncio.sleep(0.1)
    raise AssertionError(f"callback of {task_id} still pending: {task}")


def _signed(delivery: Any, secret: str) -> bool:
    return verify(delivery.body, delivery.headers[SIGNATURE_HEADER.lower()], secret)


@pytest.mark.integration
async def test_a_receiver_that_fails_twice_gets_exactly_one_accepted_signed_delivery(
        own_env: Env) -> None:
    url = start_api(own_env)
    start_agent(own_env, "--agents", "echo")
    with running_receiver() as receiver:
        receiver.fail_next(2)
        async with api_client(own_env, url) as client:
            secret = await _secret(client)
            task = await submit(client, "echo", {"order": 42}, callback_url=receiver.url)
            assert task["callback_url"] == receiver.url and task["callback_state"] is None
            done = await _settled(client, task["id"])
            timeline = await events(client, task["id"])
    assert done["status"] == "succeeded" and done["callback_state"] == "delivered"
    assert done["callback_attempts"] == 3
    assert [d.answered for d in receiver.deliveries] == [500, 500, 200]
    [accepted] = receiver.accepted()
    assert _signed(accepted, secret) and not _signed(accepted, secret + "x")
    body = json.loads(accepted.body)
    assert body["event"] == "task.succeeded" and body["task"]["result"] == {"order": 42}
    assert body["task"]["id"] == task["id"] and accepted.path == "/hooks/task-done"
    ids = {d.headers["orchestrator-delivery"] for d in receiver.deliveries}
    assert ids == {body["delivery_id"]}  # one delivery, tried three times
    assert kinds(timeline)[-3:] == ["callback_failed", "callback_failed", "callback_delivered"]
    failed = timeline[-3]["detail"]
    assert failed["http_status"] == 500 and failed["attempt"] == 1 and failed["retry_in_s"] > 0
    assert timeline[-1]["detail"]["url"] == receiver.url  # (no query to leave out)


@pytest.mark.integration
async def test_a_receiver_down_while_the_api_restarts_still_gets_it(own_env: Env) -> None:
    port = free_port()
    first = start_api(own_env)
    start_agent(own_env, "--agents", "echo")
    async with api_client(own_env, first) as client:
        secret = await _secret(client)
        hook = f"http://127.0.0.1:{port}/hooks/after-restart"
        task = await submit(client, "echo", {"n": 1}, callback_url=hook)
        await wait_for(client, task["id"])
        deadline = time.monotonic() + 20
        while "callback_failed" not in kinds(await events(client, task["id"])):
            assert time.monotonic() < deadline, "no failed delivery to the closed port"
            await asyncio.sleep(0.1)
    api = next(p for p in own_env.processes if "api" in p.popen.args)
    assert api.terminate() == 0  # no API at all for a while
    await asyncio.sleep(1.0)
    with running_receiver(port) as receiver:
        second = start_api(own_env)
        async with api_client(own_env, second) as client:
            done = await _settled(client, task["id"])
            await asyncio.sleep(0.5)  # nothing more comes
    assert done["callback_state"] == "delivered" and done["callback_attempts"] >= 2
    [accepted] = receiver.accepted()
    assert len(receiver.deliveries) == 1 and _signed(accepted, secret)
    assert json.loads(accepted.body)["task"]["id"] == task["id"]


@pytest.mark.integration
async def test_a_cancelled_task_calls_back_and_a_rotated_secret_signs_beside_the_old(
        own_env: Env) -> None:
    url = start_api(own_env)
    with running_receiver() as receiver:
        async with api_client(own_env, url) as client:
            old = await _secret(client)
            rotated = await client.post("/v1/callbacks/secret/rotate")
            assert rotated.status_code == 200
            new = rotated.json()["secret"]
            assert new != old and rotated.json()["previous_secret_valid_until"]
            task = await submit(client, "echo", {}, delay_s=3600, callback_url=receiver.url)
            await client.post(f"/v1/tasks/{task['id']}/cancel")
            done = await _settled(client, task["id"])
    assert done["callback_state"] == "delivered"
    [accepted] = receiver.accepted()
    assert json.loads(accepted.body)["event"] == "task.cancelled"
    assert _signed(accepted, new) and _signed(accepted, old)


@pytest.mark.integration
async def test_private_callback_addresses_are_refused_without_the_setting(
        client: httpx.AsyncClient) -> None:
    for url in ("http://127.0.0.1:9/x", "http://localhost/x", "http://169.254.169.254/"):
        answer = await client.post("/v1/tasks", json={"agent": "echo", "input": 1,
                                                      "callback_url": url})
        assert answer.status_code == 400, answer.text
        assert "ORCH_CALLBACK_ALLOW_PRIVATE" in answer.json()["detail"]
    answer = await client.post("/v1/tasks", json={"agent": "echo", "input": 1,
                                                  "callback_url": "gopher://x/"})
    assert answer.status_code == 400 and "callback_url" in answer.text
