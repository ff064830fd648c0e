"""The paging drill with the real command: `orchestrator stack up` brings up the orchestrator,
Prometheus, Alertmanager and the page inbox; stopping the agent pages with the runbook link;
starting an agent drains the backlog and resolves the page; `stack down` leaves nothing behind.

Alert ``for:`` and the notification timings are shortened through settings (drill mode);
everything else is what a developer runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.page_inbox import Inbox
from tests.services import ORCHESTRATOR, Env, create_env, destroy_env, free_port, wait_until

pytestmark = pytest.mark.integration


@dataclass
class Drill:
    env: Env
    environ: dict[str, str]
    state: Path
    api: str
    prometheus: str
    supervisor: subprocess.Popen[bytes]
    log: Path
    startup_s: float

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ORCHESTRATOR, *args], env=self.environ, capture_output=True,
                              text=True, timeout=120, cwd=cwd)

    def status(self) -> dict[str, tuple[int, str]]:
        rows = json.loads(self.cli("stack", "status", "--json").stdout)["processes"]
        return {r["process"]: (r["pid"], r["state"]) for r in rows}


@pytest.fixture
def drill(logs_dir: Path, tmp_path: Path) -> Iterator[Drill]:
    env = create_env(logs_dir, heartbeat_ttl_s="2", heartbeat_interval_s="0.5",
                     shutdown_grace_s="1")
    api_port, prometheus_port = free_port(), free_port()
    environ = {**os.environ, **env.environ,
               "ORCH_STATE_DIR": str(tmp_path / "state"), "ORCH_API_PORT": str(api_port),
               "ORCH_AGENT_METRICS_PORT": str(free_port()),
               "ORCH_PROMETHEUS_PORT": str(prometheus_port),
               "ORCH_ALERTMANAGER_PORT": str(free_port()),
               "ORCH_PAGE_INBOX_PORT": str(free_port()),
               "ORCH_STACK_SCRAPE_INTERVAL": "1s", "ORCH_ALERT_FOR_OVERRIDE": "10s",
               "ORCH_ALERT_GROUP_WAIT": "1s", "ORCH_ALERT_GROUP_INTERVAL": "5s",
               "ORCH_LOG_FORMAT": "human"}
    log = env.logs / "stack-up.log"
    started = time.monotonic()
    with log.open("wb") as out:
        supervisor = subprocess.Popen([*ORCHESTRATOR, "stack", "up"], env=environ, stdout=out,
                                      stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "orchestrator is up" in log.read_text() or supervisor.poll(),
                   timeout_s=90)
        assert supervisor.poll() is None, log.read_text()
        yield Drill(env, environ, tmp_path / "state" / "stack", f"http://127.0.0.1:{api_port}",
                    f"http://127.0.0.1:{prometheus_port}", supervisor, log,
                    time.monotonic() - started)
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGINT)
            supervisor.wait(60)
        destroy_env(env)


def query(drill: Drill, promql: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{drill.prometheus}/api/v1/query", params={"query": promql},
                     timeout=5).json()
    return list(body["data"]["result"])


def test_stopping_the_agent_pages_and_starting_one_resolves(drill: Drill) -> None:
    inbox = Inbox(drill.state / "pages.jsonl")
    key = drill.environ["ORCH_STATE_DIR"] + "/dev-api-key"
    headers = {"Authorization": f"Bearer {Path(key).read_text().strip()}"}
    # Given the stack is up and Prometheus has found the Alertmanager
    assert set(drill.status()) == {"supervisor", "api", "agent-1", "page-inbox", "alertmanager",
                                   "prometheus"}
    wait_until(lambda: httpx.get(f"{drill.prometheus}/api/v1/alertmanagers").json()["data"]
               ["activeAlertmanagers"], timeout_s=20)
    # and a workload runs through it
    with httpx.Client(base_url=drill.api, headers=headers, timeout=10) as client:
        warm = [client.post("/v1/tasks", json={"agent": "echo", "input": n}).json()["id"]
                for n in range(5)]
        wait_until(lambda: all(client.get(f"/v1/tasks/{i}").json()["status"] == "succeeded"
                               for i in warm), timeout_s=20)
        wait_until(lambda: query(drill, 'orchestrator_agents_live{agent="echo"} == 1'), 20)

        # When the agent process is stopped, and work keeps arriving
        agent_pid = drill.status()["agent-1"][0]
        os.kill(agent_pid, signal.SIGTERM)
        fault_at = time.time()
        backlog = [client.post("/v1/tasks", json={"agent": "echo", "input": n}).json()["id"]
                   for n in range(20)]

        # Then a critical page arrives in the inbox, with the runbook link
        page = inbox.wait_for(lambda e: e["event_action"] == "trigger"
                              and e["payload"]["custom_details"]["runbook_url"].endswith(
                                  "#agentsmissing")
                              and "echo" in e["payload"]["summary"], timeout_s=60)
        fault_to_page = page["received_at"] - fault_at
        details = page["event"]["payload"]["custom_details"]
        assert page["event"]["payload"]["severity"] == "critical"
        # on the moved port: the link is the page inbox's runbook (it stays up without the API)
        inbox_url = f"http://127.0.0.1:{drill.environ['ORCH_PAGE_INBOX_PORT']}"
        assert details["runbook_url"] == f"{inbox_url}/runbook#agentsmissing"
        section = httpx.get(details["runbook_url"], timeout=5)
        assert section.status_code == 200 and 'id="agentsmissing"' in section.text
        # and the alerts that are consequences of a missing worker do not fire beside it
        firing = {a["labels"]["alertname"] for a in httpx.get(
            f"{drill.prometheus}/api/v1/alerts").json()["data"]["alerts"]
            if a["state"] == "firing"}
        assert "AgentsMissing" in firing
        assert not {"QueueWithoutConsumers", "AgentTargetsAbsent"} & firing, firing
        pages = drill.cli("stack", "pages")
        assert pages.returncode == 0 and "#agentsmissing" in pages.stdout

        # And a second `stack up` from the same state folder refuses, naming the running one
        second = subprocess.run([*ORCHESTRATOR, "stack", "up"], env=drill.environ,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert f"supervisor pid {drill.supervisor.pid}" in second.stderr
        assert "orchestrator stack down" in second.stderr
        assert set(drill.status()) == {"supervisor", "api", "agent-1", "page-inbox",
                                       "alertmanager", "prometheus"}

        # When an agent is started again (the operator's fix)
        back_at = time.time()
        agent = subprocess.Popen([*ORCHESTRATOR, "agent", "--metrics-port",
                                  drill.environ["ORCH_AGENT_METRICS_PORT"]], env=drill.environ,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # Then the backlog drains and the page resolves
            wait_until(lambda: all(client.get(f"/v1/tasks/{i}").json()["status"] ==
                                   "succeeded" for i in backlog), timeout_s=30)
            resolved = inbox.wait_for(lambda e: e["event_action"] == "resolve"
                                      and e["dedup_key"] == page["event"]["dedup_key"],
                                      timeout_s=60)
            recovery_to_resolve = resolved["received_at"] - back_at
        finally:
            agent.terminate()
            agent.wait(30)
    print(f"\nstack start-up {drill.startup_s:.1f}s; fault -> page {fault_to_page:.1f}s;"
          f" recovery -> resolve {recovery_to_resolve:.1f}s (for: 10s, scrape 1s)")

    # And exactly one page was sent for the incident
    triggers = [e for e in inbox.events() if e["event_action"] == "trigger"]
    assert [e["dedup_key"] for e in triggers] == [page["event"]["dedup_key"]], triggers

    # And `stack down`, from another working folder, stops every process it started
    pids = [pid for pid, _ in drill.status().values()]
    down = drill.cli("stack", "down", cwd=drill.state.parent.parent)
    assert down.returncode == 0, down.stdout + down.stderr
    drill.supervisor.wait(30)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", f"pid {pid} still runs"
