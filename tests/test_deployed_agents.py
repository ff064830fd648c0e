"""An agent type must have a live worker (``AgentsMissing`` pages) once one has served it, or
when it is configured as deployed; a type no deployment runs pages nobody; a type taken out of
service is retired with ``orchestrator agents retire``."""

from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest

from tests.services import ORCHESTRATOR, Env, start_agent, start_api

pytestmark = pytest.mark.integration


OWN_ENV = {"deployed_agents": "summarize"}
"""The settings of this module's ``own_env`` (see conftest)."""


def agents_live(api_url: str) -> dict[str, float]:
    text = httpx.get(f"{api_url}/metrics", timeout=5).text
    prefix = 'orchestrator_agents_live{agent="'
    return {line[len(prefix):].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(prefix)}


def eventually(api_url: str, expected: dict[str, float], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while (seen := agents_live(api_url)) != expected:
        assert time.monotonic() < deadline, seen
        time.sleep(0.2)


def test_only_deployed_agent_types_must_have_a_live_worker(own_env: Env) -> None:
    # Given an API that knows every built-in agent type, and `summarize` configured as deployed
    api_url = start_api(own_env)
    # Then only the configured type reads 0 live workers: the others no deployment runs
    eventually(api_url, {"summarize": 0.0})

    # When a worker for echo starts, and later stops cleanly (it deregisters)
    worker = start_agent(own_env, "--agents", "echo")
    eventually(api_url, {"summarize": 0.0, "echo": 1.0})
    assert worker.terminate() == 0
    # Then echo is still expected: its missing worker is what AgentsMissing pages for
    eventually(api_url, {"summarize": 0.0, "echo": 0.0})

    # When an operator retires echo
    environ = {**os.environ, **own_env.environ}
    retire = subprocess.run([*ORCHESTRATOR, "agents", "retire",
                             "echo"], env=environ, capture_output=True, text=True, timeout=60)
    assert retire.returncode == 0, retire.stderr
    # Then it pages nobody any more; a second retire says it was not expected
    eventually(api_url, {"summarize": 0.0})
    again = subprocess.run([*ORCHESTRATOR, "agents", "retire",
                            "echo"], env=environ, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "is not an agent type that has had a worker" in again.stderr

    # And a worker that starts again makes it expected again
    start_agent(own_env, "--agents", "echo")
    eventually(api_url, {"summarize": 0.0, "echo": 1.0})
