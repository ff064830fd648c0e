"""Concurrency per agent type (``ORCH_CONCURRENCY``): the setting's parsing, and against a real
worker that each type has slots of its own, so a type whose tasks hang cannot hold up another."""

from __future__ import annotations

import asyncio

import pytest

from service.worker.capacity import parse_concurrency
from tests.services import Env, api_client, start_agent, start_api

KNOWN = ["echo", "sleep", "summarize", "llm"]


@pytest.mark.unit
def test_a_default_for_every_type_and_numbers_for_the_named_ones() -> None:
    assert parse_concurrency("100", ["echo", "sleep"], KNOWN) == {"echo": 100, "sleep": 100}
    assert parse_concurrency(" 50, sleep = 3 ,llm=400", ["echo", "sleep"], KNOWN) == {
        "echo": 50, "sleep": 3}  # llm is known but not served here


@pytest.mark.unit
@pytest.mark.parametrize(("spec", "message"), [
    ("", "the default must be a whole number"),
    ("0", "from 1 to 10000"),
    ("ten", "not 'ten'"),
    ("10,sleep", "'sleep' is not NAME=N"),
    ("10,sleep=0", "sleep must be a whole number"),
    ("10,nosuch=3", "unknown agent 'nosuch'"),
])
def test_an_unreadable_setting_names_the_variable(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match="ORCH_CONCURRENCY") as raised:
        parse_concurrency(spec, ["echo", "sleep"], KNOWN)
    assert message in str(raised.value)


@pytest.mark.integration
async def test_a_type_with_its_slots_full_does_not_hold_up_another(own_env: Env) -> None:
    url = start_api(own_env)
    agent = start_agent(own_env, "--agents", "sleep,echo", "--concurrency", "4,sleep=2")
    assert "concurrency sleep=2,echo=4" in agent.output()
    async with api_client(own_env, url) as client:
        sleepers = [(await client.post("/v1/tasks", json={
            "agent": "sleep", "input": {"seconds": 60}})).json()["id"] for _ in range(3)]
        echoes = [(await client.post("/v1/tasks", json={"agent": "echo", "input": n})).json()["id"]
                  for n in range(8)]
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            statuses = [(await client.get(f"/v1/tasks/{t}")).json()["status"]
                        for t in [*sleepers, *echoes]]
            if statuses[3:] == ["succeeded"] * 8 and sorted(statuses[:3]) == [
                    "queued", "running", "running"]:
                break
            assert asyncio.get_running_loop().time() < deadline, statuses
            await asyncio.sleep(0.2)
