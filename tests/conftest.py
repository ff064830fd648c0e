"""Shared fixtures: one isolated environment with an API and a worker for the session."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_llm import FakeLLM, running_fake_llm
from tests.services import Env, Proc, create_env, create_key, destroy_env, start_agent, start_api

FINAL = {"succeeded", "dead", "cancelled"}
# The session worker serves every agent but ``sleep``: tests that need a held task use ``sleep``
# with a worker of their own (or none, to keep a task queued).
SESSION_AGENTS = "echo,fail,summarize,llm"


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("orchestrator-logs")


@pytest.fixture(scope="session")
def env(logs_dir: Path) -> Iterator[Env]:
    environment = create_env(logs_dir)
    yield environment
    destroy_env(environment)


@pytest.fixture(scope="session")
def api_url(env: Env) -> str:
    return start_api(env)


@pytest.fixture(scope="session")
def api_key(env: Env, api_url: str) -> str:
    return create_key(env)


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    """A local server speaking the OpenAI chat-completions protocol (the only faked SaaS)."""
    with running_fake_llm() as fake:
        yield fake


@pytest.fixture(scope="session")
def worker(env: Env, api_url: str, fake_llm: FakeLLM) -> Proc:
    return start_agent(env, "--agents", SESSION_AGENTS, "--concurrency", "8",
                environ=env.with_vars(llm_base_url=fake_llm.base_url, llm_api_key="sk-test"))


@pytest.fixture
async def client(api_url: str, api_key: str, worker: Proc) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=15,
                                 headers={"Authorization": f"Bearer {api_key}"}) as http:
        yield http


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
