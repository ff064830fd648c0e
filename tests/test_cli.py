"""The operator CLI, run as a user would, against the running API."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.services import ORCHESTRATOR, Env, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(env: Env, api_url: str, api_key: str, worker: None):  # type: ignore[no-untyped-def]
    def run(*args: str, key: str | None = None, url: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, **env.environ, "ORCH_API_URL": url or api_url,
                   "ORCH_API_KEY": api_key if key is None else key}
        return subprocess.run([*ORCHESTRATOR, *args], env=environ,
                              capture_output=True, text=True, timeout=120)
    return run


def test_submit_wait_prints_the_finished_task(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("submit", "echo", '{"via": "cli"}', "--wait", "--json")
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)
    assert task["status"] == "succeeded"
    assert task["result"] == {"via": "cli"}

    status = cli("status", task["id"])
    assert status.returncode == 0
    assert "succeeded" in status.stdout and '{"via": "cli"}' in status.stdout

    timeline = cli("events", task["id"])
    assert timeline.returncode == 0
    lines = timeline.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["submitted", "published", "started",
                                                  "succeeded"]


def test_submit_wait_exits_non_zero_when_the_task_dies(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("submit", "fail", '{"non_retryable": true}', "--wait")
    assert result.returncode == 1
    assert "dead" in result.stdout


def test_tasks_and_agents_list_as_tables_and_json(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("submit", "echo", "1", "--wait").returncode == 0
    table = cli("tasks", "--agent", "echo", "--limit", "3")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "AGENT", "STATUS"]
    listing = json.loads(cli("tasks", "--status", "succeeded", "--json").stdout)
    assert listing["items"] and {t["status"] for t in listing["items"]} == {"succeeded"}
    agents = json.loads(cli("agents", "--json").stdout)
    assert {a["name"] for a in agents["agents"]} >= {"echo", "fail", "sleep", "summarize", "llm"}
    assert next(a for a in agents["agents"] if a["name"] == "echo")["live_workers"] >= 1


def test_errors_are_one_line_with_a_non_zero_exit(cli) -> None:  # type: ignore[no-untyped-def]
    bad_json = cli("submit", "echo", "{not json")
    assert bad_json.returncode == 2
    assert "INPUT is not valid JSON" in bad_json.stderr

    wrong_key = cli("status", "00000000-0000-0000-0000-000000000000", key="orch_wrong")
    assert wrong_key.returncode == 1
    assert "HTTP 401" in wrong_key.stderr

    missing = cli("status", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 1
    assert "HTTP 404" in missing.stderr and "does not exist" in missing.stderr

    down = cli("agents", url=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1
    assert "cannot reach the API" in down.stderr
    assert "Traceback" not in down.stderr


def test_help_lists_every_operator_command(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("--help")
    assert result.returncode == 0
    for command in ("up", "api", "agent", "migrate", "keys", "submit", "status", "tasks",
                    "events", "agents", "cancel", "retry"):
        assert command in result.stdout
