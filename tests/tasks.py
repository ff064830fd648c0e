"""Helpers for tests that drive tasks through the API: submit, wait, read the timeline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

FINAL = {"succeeded", "dead", "cancelled"}


async def submit(client: httpx.AsyncClient, agent: str, payload: Any = None,
                 **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/tasks", json={"agent": agent, "input": payload, **fields})
    assert response.status_code == 202, response.text
    return dict(response.json())


async def wait_for(client: httpx.AsyncClient, task_id: str, statuses: set[str] = FINAL,
                   timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get(f"/v1/tasks/{task_id}")
        assert response.status_code == 200, response.text
        task = dict(response.json())
        if task["status"] in statuses:
            return task
        assert time.monotonic() < deadline, f"task still {task['status']}: {task}"
        await asyncio.sleep(0.05)


def kinds(timeline: list[dict[str, Any]]) -> list[str]:
    """The event kinds of a timeline, in order."""
    return [e["kind"] for e in timeline]


async def events(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/tasks/{task_id}/events")
    assert response.status_code == 200, response.text
    return list(response.json()["events"])


async def wait_for_event(client: httpx.AsyncClient, task_id: str, kind: str,
                         status: str | None = None, timeout_s: float = 20) -> list[dict[str, Any]]:
    """Poll the timeline until an event of ``kind`` (and ``status``) appears; return it all."""
    deadline = time.monotonic() + timeout_s
    while True:
        timeline = await events(client, task_id)
        if any(e["kind"] == kind and status in (None, e["status"]) for e in timeline):
            return timeline
        assert time.monotonic() < deadline, f"no {kind} event: {timeline}"
        await asyncio.sleep(0.05)
