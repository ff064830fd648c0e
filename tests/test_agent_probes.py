"""An agent's probes on its metrics port (what Kubernetes' liveness and readiness probes ask),
against a real agent process: live and ready while it consumes, ready no longer once it has been
told to stop while its grace period lets a task finish, live throughout."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.services import Env, api_client, start_agent, start_api

pytestmark = pytest.mark.integration


async def _probe(http: httpx.AsyncClient, which: str) -> tuple[int, dict[str, str]]:
    answer = await http.get(f"/health/{which}")
    return answer.status_code, answer.json()


async def test_an_agent_is_live_and_ready_while_consuming_and_not_ready_once_stopping(
        own_env: Env) -> None:
    url = start_api(own_env)
    agent = start_agent(own_env, "--agents", "sleep", "--metrics-port", "0")
    base = agent.metrics_url().removesuffix("/metrics")
    async with httpx.AsyncClient(base_url=base, timeout=5) as http, \
            api_client(own_env, url) as client:
        assert await _probe(http, "live") == (200, {"status": "ok",
                                                    "detail": "the event loop runs"})
        status, ready = await _probe(http, "ready")
        assert status == 200 and ready["detail"] == "consuming 3 queues"  # the type's 3 bands
        assert "orchestrator_build_info" in (await http.get("/metrics")).text
        answer = await client.post("/v1/tasks", json={"agent": "sleep", "input": {"seconds": 4}})
        assert answer.status_code == 202, answer.text
        task = answer.json()["id"]
        for _ in range(200):
            if (await client.get(f"/v1/tasks/{task}")).json()["status"] == "running":
                break
            await asyncio.sleep(0.1)
        agent.popen.terminate()  # SIGTERM: the running task gets its grace period
        await asyncio.to_thread(agent.wait_for_output, "in-flight tasks")
        assert await _probe(http, "ready") == (503, {"status": "unavailable",
                                                     "detail": "stopping"})
        assert (await _probe(http, "live"))[0] == 200
    assert await asyncio.to_thread(agent.popen.wait, 30) == 0
