"""The operator CLI, run as a user would, against the running API."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.services import (
    ORCHESTRATOR,
    Env,
    create_key,
    free_port,
    start_agent,
    start_api,
    wait_until,
)

pytestmark = pytest.mark.integration


def command_line(env: Env, api_url: str, api_key: str):  # type: ignore[no-untyped-def]
    """``orchestrator ...`` as a user runs it, against the API at ``api_url``."""
    def run(*args: str, key: str | None = None, url: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        environ = {**os.environ, **env.environ, "ORCH_API_URL": url or api_url,
                   "ORCH_API_KEY": api_key if key is None else key}
        return subprocess.run([*ORCHESTRATOR, *args], env=environ,
                              capture_output=True, text=True, timeout=120)
    return run


@pytest.fixture
def cli(env: Env, api_url: str, api_key: str, worker: None):  # type: ignore[no-untyped-def]
    return command_line(env, api_url, api_key)


def test_submit_wait_prints_the_finished_task(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("submit", "echo", '{"via": "cli"}', "--wait", "--json")
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)
    assert task["status"] == "succeeded"
    assert task["result"] == {"via": "cli"}

    status = cli("status", task["id"])
    assert status.returncode == 0
    assert "succeeded" in status.stdout and '{"via": "cli"}' in status.stdout

    timeline = cli("events", task["id"][:8])  # a unique start of the id will do
    assert timeline.returncode == 0, timeline.stderr
    header, *lines = timeline.stdout.splitlines()
    assert header.split() == ["AT", "KIND", "STATUS", "ATTEMPT", "WORKER", "DETAIL"]
    assert [line.split()[1] for line in lines] == ["submitted", "published", "started",
                                                  "succeeded"]
    assert "queue=orch.agent.echo" in lines[1]  # where the first publish went
    absolute = cli("events", task["id"], "--absolute").stdout.splitlines()[1]
    assert absolute.split()[0] == task["created_at"][:10]  # a UTC date, not "+0.0ms"


def test_submit_later_holds_the_task_until_due(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("submit", "echo", "{}", "--delay", "1.5", "--priority", "4",
                 "--concurrency-key", "customer-7", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    task = json.loads(result.stdout)
    assert task["priority"] == 4 and task["concurrency_key"] == "customer-7"
    held_s = (datetime.fromisoformat(task["started_at"])
              - datetime.fromisoformat(task["created_at"])).total_seconds()
    assert held_s >= 1.5
    due = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    later = json.loads(cli("submit", "echo", "{}", "--run-at", due.isoformat(), "--json").stdout)
    assert datetime.fromisoformat(later["available_at"]) == due
    assert cli("cancel", later["id"]).returncode == 0
    refused = cli("submit", "echo", "{}", "--run-at", "2026-12-03 18:00")
    assert refused.returncode != 0 and "has no offset" in refused.stderr


def test_submit_wait_exits_non_zero_when_the_task_dies(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("submit", "fail", '{"non_retryable": true}', "--wait")
    assert result.returncode == 1
    assert "dead" in result.stdout
    # the id comes at once, then each change of status
    first, *changes = result.stderr.splitlines()
    assert re.fullmatch(r"task [0-9a-f-]{36} (queued|running|dead)", first), result.stderr
    assert changes and changes[-1].split()[1] == "dead", result.stderr


def test_submit_wait_says_when_the_task_is_still_unfinished(cli) -> None:  # type: ignore[no-untyped-def]
    # no worker of the session serves ``sleep``: the task stays queued
    result = cli("submit", "sleep", '{"seconds": 0}', "--wait", "--timeout", "1",
                 "--priority", "3", "--timeout-s", "7", "--json")
    assert result.returncode == 3
    task = json.loads(result.stdout)
    assert (task["status"], task["priority"], task["timeout_s"]) == ("queued", 3, 7)
    assert f"still queued after 1 s; follow it with: orchestrator status {task['id']}" \
        in result.stderr
    assert cli("cancel", task["id"]).returncode == 0


def test_a_running_task_cancelled_is_told_as_a_request(own_env: Env) -> None:
    cli = command_line(own_env, start_api(own_env), create_key(own_env))
    start_agent(own_env, "--agents", "sleep")
    task = json.loads(cli("submit", "sleep", '{"seconds": 30}', "--json").stdout)
    wait_until(lambda: json.loads(cli("status", task["id"], "--json").stdout)["status"]
               == "running", timeout_s=30, interval_s=0.3)
    answer = cli("cancel", task["id"][:13])
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith(f"cancel requested: task {task['id']} is running")
    wait_until(lambda: json.loads(cli("status", task["id"], "--json").stdout)["status"]
               == "cancelled", timeout_s=30, interval_s=0.3)


def test_stats_and_stuck_tasks_at_a_glance(own_env: Env) -> None:
    url = start_api(own_env, environ=own_env.with_vars(stuck_queued_s="1"))
    admin = create_key(own_env, None, "admin")
    cli = command_line(own_env, url, admin)
    start_agent(own_env, "--agents", "sleep,fail", "--concurrency", "1",
                environ=own_env.with_vars(prefetch="2"))  # a delivery waits for the one slot
    assert cli("submit", "fail", '{"non_retryable": true}', "--wait").returncode == 1
    held = [json.loads(cli("submit", "sleep", '{"seconds": 60}', "--json").stdout)["id"]
            for _ in range(2)]
    waiting = json.loads(cli("submit", "echo", '"nobody serves echo here"', "--json").stdout)

    def snapshot() -> dict[str, Any]:
        done = cli("stats", "--json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    # one sleep task runs, the other waits for the slot in the same worker: both unacked; the
    # dead fail task is in the dead-letter record
    stats = wait_until(lambda: (s := snapshot()) and {q["queue"]: q for q in s["queues"]}
                       ["orch.agent.sleep"]["unacked"] >= 2
                       and s["dead_letters_open"].get("fail") == 1 and s, timeout_s=30,
                       interval_s=0.5)
    queues = {q["queue"]: q for q in stats["queues"]}
    assert queues["orch.agent.sleep"]["consumers"] == 1
    assert queues["orch.agent.echo"] == {"queue": "orch.agent.echo", "ready": 1, "unacked": 0,
                                         "consumers": 0}
    agents = {a["agent"]: a for a in stats["agents"]}
    assert agents["sleep"]["by_status"]["running"] == 1
    assert agents["echo"]["by_status"]["queued"] == 1
    fail_5m = agents["fail"]["windows"][0]
    assert (fail_5m["minutes"], fail_5m["dead"], fail_5m["failure_ratio"]) == (5, 1, 1.0)
    assert stats["outbox_unpublished"] == 0 and stats["dead_letter_queue_ready"] == 0
    table = cli("stats")
    assert table.returncode == 0 and "orch.agent.sleep" in table.stdout
    assert "all agents: last 5 min:" in table.stdout
    assert "dead letters open: fail 1" in table.stdout

    # the echo task waits past ORCH_STUCK_QUEUED_S; a running one is made to look hung
    with psycopg.connect(own_env.settings.database.url, autocommit=True) as conn:
        conn.execute("UPDATE tasks SET started_at = now() - interval '1 hour'"
                     " WHERE status = 'running' AND agent = 'sleep'")
    time.sleep(1.2)
    stuck = json.loads(cli("tasks", "--stuck", "--json").stdout)["items"]
    running = [t["id"] for t in stuck if t["status"] == "running"]
    assert waiting["id"] in {t["id"] for t in stuck} and len(running) == 1 and running[0] in held
    assert {t["agent"] for t in stuck} == {"sleep", "echo"}

    # --watch redraws every 2 s until Ctrl-C (one JSON document a line with --json)
    watching = subprocess.Popen(
        [*ORCHESTRATOR, "stats", "--watch", "--json"], stdout=subprocess.PIPE, text=True,
        env={**os.environ, **own_env.environ, "ORCH_API_URL": url,
             "ORCH_API_KEY": admin})
    time.sleep(5)
    watching.send_signal(signal.SIGINT)
    out, _ = watching.communicate(timeout=30)
    assert watching.returncode == 0
    lines = out.splitlines()
    assert len(lines) >= 2 and all(json.loads(line)["queues"] for line in lines)


def test_task_ids_may_be_given_by_a_unique_start(cli) -> None:  # type: ignore[no-untyped-def]
    task = json.loads(cli("submit", "echo", '"prefix"', "--wait", "--json").stdout)
    dashed = cli("status", task["id"][:13], "--json")  # dashes as in the id
    assert json.loads(dashed.stdout)["id"] == task["id"]
    short = cli("status", task["id"][:3])
    assert short.returncode == 1 and "at least 4 characters" in short.stderr
    wrong = cli("status", "zz-top")
    assert wrong.returncode == 1 and "not a task id nor the start of one" in wrong.stderr
    unknown = "0000000" if not task["id"].startswith("0000000") else "fffffff"
    absent = cli("status", unknown)
    assert absent.returncode == 1 and f"no task id starts with '{unknown}'" in absent.stderr


def test_an_ambiguous_start_of_an_id_names_the_candidates(env: Env, cli) -> None:  # type: ignore[no-untyped-def]
    task = json.loads(cli("submit", "echo", '"twin"', "--wait", "--json").stdout)
    twin = task["id"][:-1] + ("0" if task["id"][-1] != "0" else "1")
    with psycopg.connect(env.settings.database.url, autocommit=True) as conn:
        conn.execute("INSERT INTO tasks (id, agent, input, status, max_attempts, timeout_s,"
                     " input_checksum, tenant, published_at, finished_at)"
                     " SELECT %s::uuid, agent, input, 'cancelled', max_attempts, timeout_s,"
                     " input_checksum, tenant, now(), now() FROM tasks WHERE id = %s",
                     (twin, task["id"]))
    ambiguous = cli("status", task["id"][:8])
    assert ambiguous.returncode == 1
    assert f"'{task['id'][:8]}' starts 2 task ids" in ambiguous.stderr
    assert task["id"] in ambiguous.stderr and twin in ambiguous.stderr
    assert json.loads(cli("status", task["id"], "--json").stdout)["status"] == "succeeded"


def test_tasks_pages_with_a_cursor_and_all(cli) -> None:  # type: ignore[no-untyped-def]
    for n in range(5):
        assert cli("submit", "echo", str(n), "--wait").returncode == 0
    first = cli("tasks", "--agent", "echo", "--limit", "2")
    assert first.returncode == 0
    hint = first.stdout.splitlines()[-1]
    assert hint.startswith("more: add --cursor ")
    cursor = hint.split()[3]
    second = json.loads(cli("tasks", "--agent", "echo", "--limit", "2", "--cursor", cursor,
                            "--json").stdout)
    firsts = json.loads(cli("tasks", "--agent", "echo", "--limit", "2", "--json").stdout)
    assert not {t["id"] for t in second["items"]} & {t["id"] for t in firsts["items"]}
    everything = json.loads(cli("tasks", "--agent", "echo", "--all", "--json").stdout)
    ids = [t["id"] for t in everything["items"]]
    assert everything["next_cursor"] is None and len(ids) == len(set(ids)) >= 5
    assert [t["id"] for t in firsts["items"] + second["items"]] == ids[:4]


def test_a_bogus_status_lists_the_valid_ones(cli) -> None:  # type: ignore[no-untyped-def]
    bogus = cli("tasks", "--status", "bogus")
    assert bogus.returncode == 2
    assert "'queued', 'running', 'retrying', 'succeeded', 'dead', 'cancelled'" in bogus.stderr


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
    header, *rows = cli("agents").stdout.splitlines()
    assert header.split()[:4] == ["NAME", "LIVE_WORKERS", "QUEUE", "FLOW_LIMITS"]
    assert next(r for r in rows if r.startswith("echo")).split()[3] == "-"  # none declared


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
