"""Tasks submitted for later (``run_at``, ``delay_s``): stored now, published when in reach,
never started early, and started within a second of due."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from catalog import names
from service.broker.topology import delay_step_ms
from tests.tasks import events, kinds, submit, wait_for

pytestmark = pytest.mark.integration


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _started_on_time(task: dict[str, Any]) -> float:
    """Seconds from due to start; fails when the task started early."""
    late_s = (_at(task["started_at"]) - _at(task["available_at"])).total_seconds()
    assert late_s >= 0, task
    return late_s


async def test_a_delayed_task_waits_and_starts_within_a_second_of_due(
        client: httpx.AsyncClient) -> None:
    accepted = await submit(client, "echo", {"later": 1}, delay_s=2.5)
    wait_s = (_at(accepted["available_at"]) - _at(accepted["created_at"])).total_seconds()
    assert 2.4 < wait_s < 2.6 and accepted["status"] == "queued"
    done = await wait_for(client, accepted["id"], timeout_s=15)
    assert done["status"] == "succeeded" and _started_on_time(done) < 1.0
    timeline = await events(client, accepted["id"])
    assert _at(timeline[0]["detail"]["due_at"]) == _at(accepted["available_at"])
    published = [e["detail"] for e in timeline if e["kind"] == "published"]
    assert published[0]["queue"] == names.delay_queue(delay_step_ms(2.5))


async def test_a_run_at_delivered_early_goes_back_and_starts_on_time(
        client: httpx.AsyncClient) -> None:
    """Due in 4 s: the 2.8 s delay step brings it back more than a second early, so the worker
    hands it back to the outbox, which sends it to the delay it still needs."""
    due = datetime.now(UTC) + timedelta(seconds=4)
    accepted = await submit(client, "echo", None, run_at=due.isoformat())
    assert abs((_at(accepted["available_at"]) - due).total_seconds()) < 0.001
    done = await wait_for(client, accepted["id"], timeout_s=15)
    assert done["status"] == "succeeded" and _started_on_time(done) < 1.0
    timeline = kinds(await events(client, accepted["id"]))
    assert "early_delivery" in timeline and timeline.count("published") >= 2


async def test_the_later_of_run_at_and_delay_s_holds(client: httpx.AsyncClient) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    accepted = await submit(client, "echo", None, run_at=soon, delay_s=600)
    wait_s = (_at(accepted["available_at"]) - _at(accepted["created_at"])).total_seconds()
    assert 599 < wait_s < 601
    await client.post(f"/v1/tasks/{accepted['id']}/cancel")


async def test_a_past_run_at_starts_now(client: httpx.AsyncClient) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    accepted = await submit(client, "echo", None, run_at=past)
    done = await wait_for(client, accepted["id"])
    assert done["status"] == "succeeded"


async def test_a_task_beyond_the_delay_queues_waits_in_the_outbox(
        client: httpx.AsyncClient) -> None:
    """Three hours ahead is beyond the longest delay step: no message yet, and it is not
    counted as an outbox backlog (nothing is late). 100 s ahead goes to a delay queue now."""
    far = await submit(client, "echo", None, delay_s=3 * 3600)
    near = await submit(client, "echo", None, delay_s=100)
    await asyncio.sleep(2.5)  # relay passes (it polls every second)
    far_now = (await client.get(f"/v1/tasks/{far['id']}")).json()
    assert far_now["status"] == "queued" and far_now["published_at"] is None
    published = [e["detail"] for e in await events(client, near["id"])
                 if e["kind"] == "published"]
    assert published and published[0]["queue"] == names.delay_queue(delay_step_ms(100))
    for task in (far, near):
        answer = await client.post(f"/v1/tasks/{task['id']}/cancel")
        assert answer.json()["status"] == "cancelled"


@pytest.mark.parametrize(("fields", "says"), [
    ({"run_at": "tomorrow"}, "is not an ISO 8601 time"),
    ({"run_at": "2026-12-03T18:00:00"}, "has no offset"),
    ({"run_at": 1764781200}, "run_at"),
    ({"delay_s": -1}, "delay_s"),
    ({"delay_s": 1e12}, "delay_s"),
])
async def test_a_schedule_the_api_cannot_honour_is_a_400_naming_it(
        client: httpx.AsyncClient, fields: dict[str, Any], says: str) -> None:
    response = await client.post("/v1/tasks", json={"agent": "echo", **fields})
    assert response.status_code == 400, response.text
    assert says in json.dumps(response.json())
