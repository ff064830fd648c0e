"""``GET /v1/admin/queue-stats``, the autoscalers' signal, against the real API, PostgreSQL and
an agent: due tasks count as queued (later ones do not), running ones as running, the oldest
wait grows, every known agent type answers (each value the Kubernetes autoscalers read
resolves), and only a ``queues:read`` (or admin) key may ask."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml

from stack.k8s.render import ROOT
from tests.services import Env, api_client, start_agent, start_api

pytestmark = pytest.mark.integration


def _autoscaler_value_locations() -> list[str]:
    manifests = Path(__file__).resolve().parent.parent / ROOT / "base" / "autoscaling.yaml"
    locations = [trigger["metadata"]["valueLocation"]
                 for obj in yaml.safe_load_all(manifests.read_text())
                 if obj["kind"] == "ScaledObject" for trigger in obj["spec"]["triggers"]]
    assert locations
    return locations


async def _backlog(client: httpx.AsyncClient) -> dict[str, dict[str, float]]:
    answer = await client.get("/v1/admin/queue-stats")
    assert answer.status_code == 200, answer.text
    return answer.json()["agents"]  # type: ignore[no-any-return]


async def test_queue_stats_count_the_due_backlog_the_running_and_the_oldest_wait(
        own_env: Env) -> None:
    url = start_api(own_env)
    async with api_client(own_env, url) as tasks, \
            api_client(own_env, url, scopes="queues:read") as autoscaler:
        for seconds in (30, 30, 30, 30):
            answer = await tasks.post("/v1/tasks", json={"agent": "sleep",
                                                         "input": {"seconds": seconds}})
            assert answer.status_code == 202, answer.text
        later = await tasks.post("/v1/tasks", json={"agent": "sleep", "input": {},
                                                    "delay_s": 600})
        assert later.status_code == 202, later.text
        await asyncio.sleep(0.3)
        before = await _backlog(autoscaler)
        assert before["sleep"]["queued"] == 4  # the one due in 10 minutes is not waiting yet
        assert before["sleep"]["running"] == 0 and before["sleep"]["oldest_queued_age_s"] > 0.2
        assert before["echo"] == {"queued": 0, "running": 0, "oldest_queued_age_s": 0.0}
        assert set(before) >= {"echo", "fail", "llm", "sleep", "summarize"}
        whole = (await autoscaler.get("/v1/admin/queue-stats")).json()
        for location in _autoscaler_value_locations():  # what KEDA's triggers read resolves
            value: object = whole
            for step in location.split("."):
                assert isinstance(value, dict), location
                value = value[step]
            assert isinstance(value, int | float), location
        refused = await tasks.get("/v1/admin/queue-stats")
        assert refused.status_code == 403 and "queues:read" in refused.json()["detail"]

        start_agent(own_env, "--agents", "sleep", "--concurrency", "3")
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            now = (await _backlog(autoscaler))["sleep"]
            if now["running"] == 3 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        assert (now["queued"], now["running"]) == (1, 3)
        assert now["oldest_queued_age_s"] > before["sleep"]["oldest_queued_age_s"]  # still waiting
