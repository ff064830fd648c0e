"""The README is a test: what a newcomer copies, run exactly so.

A fresh ``git clone`` of this repository into a temporary folder; ``stack/run-local`` from
there with the defaults (state in the clone's relative ``.orchestrator``, the machine's own
PostgreSQL, RabbitMQ and Redis). What this test moves, through the documented variables, and why:

- the database, vhost and Redis key prefix are the test's own (tests never share data);
- a port is moved only if something already holds its default;
- alert ``for:`` is 10 s and scrape/evaluation 2 s (drill timings; the heartbeat TTL, 15 s, and
  everything else are the defaults), so the page must come within ``for`` + 30 s of the
  heartbeat expiring, i.e. ``TTL + for + 30 s`` after the agent stops.

Then, from another working folder: every generated rule is loaded, ``stack status`` and
``stack pages`` see the stack, every runbook command runs, stopping the agent sends exactly one
page whose runbook link opens its section at the configured URL, starting an agent resolves
it, and ``stack down`` stops everything.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.rules import rule_groups
from service.ports import port_for
from service.settings import Settings
from stack.page_inbox import Inbox
from tests.services import Env, create_env, destroy_env, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
FOR_S = 10
HEARTBEAT_TTL_S = Settings().worker.heartbeat_ttl_s
PLACEHOLDERS = {"AGENT": "echo", "NAME": "echo"}
"""Runbook placeholders a person fills in; TASK_ID becomes a real task's id."""


@dataclass
class Clone:
    folder: Path
    elsewhere: Path
    environ: dict[str, str]
    run_local: subprocess.Popen[bytes]
    output: Path

    @property
    def settings(self) -> Settings:
        """The clone's settings, as its own code resolves them (its state folder)."""
        return Settings.from_env({**self.environ,
                                  "ORCH_STATE_DIR": str(self.folder / ".orchestrator")})

    def orchestrator(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        """The clone's ``orchestrator``, on PATH as the banner says, run from another folder."""
        return subprocess.run(["orchestrator", *args], cwd=self.elsewhere, env=self.environ,
                              capture_output=True, text=True, timeout=timeout_s)

    def shell(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", command], cwd=self.elsewhere, env=self.environ,
                              capture_output=True, text=True, timeout=60)

    def processes(self) -> dict[str, dict[str, Any]]:
        status = json.loads(self.orchestrator("stack", "status", "--json").stdout)
        return {p["process"]: p for p in status["processes"]}


def _environ(env: Env, clone: Path) -> dict[str, str]:
    """The newcomer's shell: no ORCH_* but the test's own resources, moved ports, drill
    timings; the clone's virtualenv first on PATH."""
    own = {k: env.environ[k] for k in ("ORCH_DATABASE_URL", "ORCH_AMQP_URL", "ORCH_REDIS_URL",
                                      "ORCH_REDIS_PREFIX")}
    defaults = Settings()
    ports = {"ORCH_API_PORT": port_for(defaults.api.port),
             "ORCH_AGENT_METRICS_PORT": port_for(defaults.worker.metrics_port),
             "ORCH_PROMETHEUS_PORT": port_for(defaults.stack.prometheus_port),
             "ORCH_ALERTMANAGER_PORT": port_for(defaults.stack.alertmanager_port),
             "ORCH_PAGE_INBOX_PORT": port_for(defaults.stack.page_inbox_port)}
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("ORCH_", "VIRTUAL_ENV", "PYTHON"))}
    return {**base, **own, **{k: str(v) for k, v in ports.items()},
            "ORCH_ALERT_FOR_OVERRIDE": f"{FOR_S}s", "ORCH_STACK_SCRAPE_INTERVAL": "2s",
            "ORCH_ALERT_GROUP_WAIT": "1s", "ORCH_ALERT_GROUP_INTERVAL": "5s",
            "PATH": f"{clone / '.venv' / 'bin'}{os.pathsep}{base.get('PATH', '')}"}


@pytest.fixture
def clone(logs_dir: Path, tmp_path: Path) -> Iterator[Clone]:
    env = create_env(logs_dir)
    folder, elsewhere = tmp_path / "orchestrator", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(folder)], check=True, timeout=120)
    environ = _environ(env, folder)
    output = env.logs / "run-local.log"
    with output.open("wb") as out:  # run from the parent folder: the script finds its clone
        run_local = subprocess.Popen([str(Path(folder.name) / "stack" / "run-local")],
                                     cwd=tmp_path, env=environ, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Clone(folder, elsewhere, environ, run_local, output)
    finally:
        if run_local.poll() is None:
            subprocess.run(["orchestrator", "stack", "down"], cwd=elsewhere, env=environ,
                           capture_output=True, timeout=120, check=False)
        if run_local.poll() is None:
            os.killpg(run_local.pid, signal.SIGKILL)
        run_local.wait(30)
        destroy_env(env)


def usage_commands(readme: str) -> list[str]:
    """The commands of the README's "Using it" block and of every block of its "Operating
    it" section (the exercises), continuation lines joined."""
    block = re.search(r"## Using it\n.*?```\n(.*?)```", readme, re.S)
    assert block, "the README has no 'Using it' block"
    operating = re.search(r"## Operating it\n(.*?)\n## ", readme, re.S)
    assert operating, "the README has no 'Operating it' section"
    exercises = re.findall(r"```\n(.*?)```", operating.group(1), re.S)
    assert len(exercises) == 5, "one block per exercise"
    lines = "".join([block.group(1), *exercises]).replace("\\\n", " ").splitlines()
    return [re.sub(r"\s+#.*$", "", line).strip() for line in lines if line.strip()]


def runbook_commands(page: str) -> list[str]:
    """The shell blocks of the served runbook ("First commands"), one command a line."""
    blocks = re.findall(r"<pre><code[^>]*>(.*?)</code></pre>", page, re.S)
    return [html.unescape(line) for block in blocks for line in block.splitlines()
            if line.strip()]


@pytest.mark.timeout(600)  # the stack may take up to 420 s to come up (see below)
def test_the_readme_first_command_pages_you_from_a_fresh_clone(clone: Clone) -> None:
    # Given `stack/run-local`, run as the README says, is up
    wait_until(lambda: b"orchestrator is up" in clone.output.read_bytes()
               or clone.run_local.poll() is not None, timeout_s=420, interval_s=0.5)
    banner = clone.output.read_text(errors="replace")
    assert clone.run_local.poll() is None, banner[-3000:]
    settings = clone.settings
    status = json.loads(clone.orchestrator("stack", "status", "--json").stdout)
    assert status["folder"] == str(clone.folder / ".orchestrator" / "stack")  # absolute, its own
    api, prometheus = settings.api.base_url, f"http://127.0.0.1:{settings.stack.prometheus_port}"
    runbook_base = f"http://127.0.0.1:{settings.stack.page_inbox_port}/runbook"
    assert f"Runbook:      {runbook_base}" in banner  # served by the inbox: up without the API

    # Then Prometheus has loaded every generated rule, and found the Alertmanager
    loaded = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    expected = rule_groups()["groups"]
    assert [len(g["rules"]) for g in loaded] == [len(g["rules"]) for g in expected]
    assert all(r["health"] != "err" for g in loaded for r in g["rules"])
    wait_until(lambda: httpx.get(f"{prometheus}/api/v1/alertmanagers", timeout=5).json()
               ["data"]["activeAlertmanagers"], timeout_s=30)

    # And the stack commands see it from another working folder
    processes = clone.processes()
    assert set(processes) == {"supervisor", "api", "agent-1", "page-inbox", "alertmanager",
                              "prometheus"}
    assert {p["state"] for p in processes.values()} == {"running"}
    pages = clone.orchestrator("stack", "pages")
    assert pages.returncode == 0, pages.stderr

    # And a task runs (the CLI finds the development key by itself)
    submitted = clone.orchestrator("submit", "echo", '{"hello": "world"}', "--wait", "--json")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    task_id = json.loads(submitted.stdout)["id"]

    # And every command of the README's "Using it" and "Operating it" runs, with the key the
    # banner printed, against this stack's ports
    printed = re.search(r"export ORCH_API_KEY=(\S+)", banner)
    assert printed, banner[-2000:]
    dev_key = printed.group(1)
    usage = usage_commands((clone.folder / "README.md").read_text())
    assert usage[0] == "export ORCH_API_KEY=..."
    for command in usage[1:]:
        command = (command.replace("TASK_ID", task_id).replace("http://127.0.0.1:8000", api)
                   .replace("http://127.0.0.1:9090", prometheus))
        done = clone.shell(f"export ORCH_API_KEY={dev_key}; {command}")
        assert done.returncode == 0, (command, done.stdout + done.stderr)
        if command.startswith("curl"):  # a task submitted, or Prometheus answering a query
            expected = "queued" if "/v1/tasks" in command else "success"
            assert json.loads(done.stdout)["status"] == expected, done.stdout

    # And every command of the served runbook runs against this stack
    runbook = httpx.get(f"{settings.api.public_base_url}/runbook", timeout=5)
    assert runbook.status_code == 200
    commands = sorted(set(runbook_commands(runbook.text)))
    assert len(commands) > 30
    failed = []
    for template in commands:
        command = template.replace("TASK_ID", task_id)
        for placeholder, value in PLACEHOLDERS.items():
            command = re.sub(rf"\b{placeholder}\b", value, command)
        done = clone.shell(command)
        if done.returncode != 0 or "usage:" in (done.stdout + done.stderr).lower():
            failed.append((command, done.returncode, (done.stderr or done.stdout)[-300:]))
    assert failed == [], failed
    assert f"curl -sS --max-time 5 {api}/health/ready" in commands  # this stack's address

    # When the agent process is stopped, as the README says (kill its pid)
    inbox = Inbox(settings.stack_dir / "pages.jsonl")
    before = {e["dedup_key"] for e in inbox.events()}
    os.kill(processes["agent-1"]["pid"], signal.SIGTERM)
    wait_until(lambda: clone.processes()["agent-1"]["state"] == "gone", timeout_s=30)
    stopped_at = time.time()

    # Then exactly one page arrives, AgentsMissing, for every agent type it served
    entry = inbox.wait_for(lambda e: e["event_action"] == "trigger"
                           and e["dedup_key"] not in before,
                           timeout_s=HEARTBEAT_TTL_S + FOR_S + 30)
    fault_to_page = entry["received_at"] - stopped_at
    page = entry["event"]
    details = page["payload"]["custom_details"]
    assert details["runbook_url"] == f"{runbook_base}#agentsmissing"
    assert page["payload"]["severity"] == "critical"
    for agent in ("echo", "fail", "llm", "sleep", "summarize"):
        assert f"No live {agent} worker" in page["payload"]["summary"]
    # and its runbook link opens the section, at the configured public URL
    opened = httpx.get(details["runbook_url"], timeout=5)
    assert opened.status_code == 200 and 'id="agentsmissing"' in opened.text
    listed = clone.orchestrator("stack", "pages")
    assert "#agentsmissing" in listed.stdout

    # When an agent is started again, as the README says
    back_at = time.time()
    agent = subprocess.Popen(["orchestrator", "agent"], cwd=clone.elsewhere, env=clone.environ,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Then the page resolves, and it stayed the only page of the incident
        resolved = inbox.wait_for(lambda e: e["event_action"] == "resolve"
                                  and e["dedup_key"] == page["dedup_key"], timeout_s=60)
        recovery_to_resolve = resolved["received_at"] - back_at
        triggers = [e for e in inbox.events()
                    if e["event_action"] == "trigger" and e["dedup_key"] not in before]
        assert [t["dedup_key"] for t in triggers] == [page["dedup_key"]], triggers
    finally:
        agent.terminate()
        agent.wait(30)
    print(f"\nfresh clone: fault -> page {fault_to_page:.1f}s, recovery -> resolve"
          f" {recovery_to_resolve:.1f}s (heartbeat TTL {HEARTBEAT_TTL_S:g}s, for {FOR_S}s,"
          f" scrape 2s); {len(commands)} runbook commands ran")

    # And `stack down` from another folder stops everything the stack started
    pids = [p["pid"] for p in clone.processes().values()]
    down = clone.orchestrator("stack", "down", timeout_s=120)
    assert down.returncode == 0, down.stdout + down.stderr
    clone.run_local.wait(60)
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()
            and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"] == []
