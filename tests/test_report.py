"""``orchestrator report``, run as an operator would after a shift, against a real API, a real
Prometheus and Alertmanager scraping it, and the page inbox paged over the PagerDuty Events
API: the pages, the SLO budgets, throughput, the slowest agents, dead letters by reason and the
headroom against a real ``loadtest --find-max``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from orchestrator.report import markdown
from service.ports import free_port
from stack.native import NativeStack, Ports, Timings
from tests.services import ORCHESTRATOR, Env, create_key, start_agent, start_api, wait_until


def page(inbox: str, action: str, key: str, summary: str = "", severity: str = "critical"
         ) -> None:
    event = {"routing_key": "0" * 32, "event_action": action, "dedup_key": key}
    if action == "trigger":
        event["payload"] = {"summary": summary, "source": "alertmanager", "severity": severity,
                            "custom_details": {"scenario": "13", "runbook_url": "http://x/rb"}}
    answer = httpx.post(f"{inbox}/v2/enqueue", json=event, timeout=5)
    assert answer.status_code == 202, answer.text


@pytest.mark.integration
def test_the_shift_report_gathers_pages_slos_agents_dead_letters_and_headroom(
        own_env: Env, tmp_path: Path) -> None:
    api = start_api(own_env)
    admin = create_key(own_env, None, "admin")
    agent_port = free_port()
    start_agent(own_env, "--agents", "echo,fail,sleep", "--concurrency", "8", "--metrics-port",
                str(agent_port))
    state = tmp_path / "state"
    native = NativeStack(state_dir=state / "stack", api_targets=[urlsplit(api).netloc],
                         agent_targets=[f"127.0.0.1:{agent_port}"],
                         timings=Timings(scrape_interval="1s"),
                         ports=Ports(prometheus=free_port(), alertmanager=free_port(),
                                     page_inbox=free_port()))
    native.start()
    try:
        environ = {**os.environ, **own_env.environ, "ORCH_API_URL": api, "ORCH_API_KEY": admin,
                   "ORCH_STATE_DIR": str(state),
                   "ORCH_PROMETHEUS_PORT": str(native.ports.prometheus),
                   "ORCH_ALERTMANAGER_PORT": str(native.ports.alertmanager)}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*ORCHESTRATOR, *args], env=environ, capture_output=True,
                                  text=True, timeout=180)

        def prometheus_has(query: str) -> bool:
            return bool(httpx.get(f"{native.prometheus_url}/api/v1/query", timeout=5,
                                  params={"query": query}).json()["data"]["result"])

        # Given Prometheus scraping both targets (a counter's first sample is its baseline)
        wait_until(lambda: prometheus_has("count(count_over_time(up[1m]) > 1) == 2"),
                   timeout_s=60, interval_s=0.5)
        # and a shift's work: echo tasks, slower sleep tasks, two that fail for good
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {admin}"},
                          timeout=10) as client:
            for n in range(20):
                assert client.post("/v1/tasks", json={"agent": "echo", "input": n}
                                   ).status_code == 202
            for _ in range(3):
                assert client.post("/v1/tasks", json={"agent": "sleep", "input": {
                    "seconds": 0.3}}).status_code == 202
            for _ in range(2):
                assert client.post("/v1/tasks", json={"agent": "fail", "input": {
                    "non_retryable": True}}).status_code == 202
        # and a capacity search that held 10 tasks/s
        found = cli("loadtest", "--find-max", "--rate", "10", "--find-step", "10",
                    "--find-limit", "10", "--stage-duration", "3", "--quiet", "--json")
        assert found.returncode == 0, found.stdout[-2000:] + found.stderr[-2000:]
        assert json.loads((state / "capacity.json").read_text())["max_rate_held"] == 10
        # and two pages, one resolved
        page(native.page_inbox_url, "trigger", "a", "agents missing: echo")
        page(native.page_inbox_url, "trigger", "b", "outbox backlog")
        page(native.page_inbox_url, "resolve", "a")
        # once Prometheus has scraped the finished work
        wait_until(lambda: prometheus_has(
            'increase(orchestrator_tasks_succeeded_total{agent="echo"}[5m]) > 0'),
            timeout_s=60, interval_s=1)

        # When the operator asks for the shift report
        done = cli("report", "--since", "1h", "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)

        # Then the pages are the inbox's, fired and resolved
        assert [(p["alert"], p["resolved_at"] is None) for p in report["pages"]] == [
            ("agents missing: echo", False), ("outbox backlog", True)]
        assert report["sources"]["firing_now"] == native.alertmanager_url  # it answered
        assert all(a["alert"] and a["severity"] for a in report["firing_now"])
        # and every SLO has its error ratio and budget over the window, from Prometheus
        slos = {s["slo"]: s for s in report["slos"]}
        assert set(slos) == {"api-availability", "task-success", "queue-wait"}
        assert slos["api-availability"]["window_error_ratio"] == 0
        assert slos["api-availability"]["window_budget_left"] == 1
        # and per agent what was done, the failures, and how slow
        agents = {a["agent"]: a for a in report["agents"]}
        assert agents["fail"]["dead"] == 2 and agents["fail"]["failure_ratio"] == 1
        assert agents["echo"]["succeeded"] >= 20 and agents["echo"]["failure_ratio"] == 0
        assert agents["sleep"]["run_p50_s"] >= 0.3
        assert agents["sleep"]["run_p95_s"] > agents["echo"]["run_p95_s"]
        # and dead letters by reason, and the headroom against the capacity measured
        assert {"agent": "fail", "reason": "non_retryable", "count": 2, "replayed": 0
                } in report["dead_letters"]
        assert report["peak_submitted_per_s"] > 0
        assert report["capacity"]["headroom"] == round(10 / report["peak_submitted_per_s"], 2)
        assert report["unavailable"] == []

        # And the Markdown is the same report, for people
        text = cli("report", "--since", "1h")
        assert text.returncode == 0, text.stderr
        print("\n" + text.stdout)
        for heading in ("# Shift report: the last 1h", "## Pages", "## SLO budget",
                        "## Throughput and failures per agent", "## Slowest agents",
                        "## Dead letters by reason", "## Capacity headroom"):
            assert heading in text.stdout
        slowest = text.stdout.split("## Slowest agents")[1].split("##")[0]
        assert slowest.index("| sleep") < slowest.index("| echo")
        assert "| fail | non_retryable | 2 | 0 |" in text.stdout
    finally:
        native.stop()


@pytest.mark.unit
def test_a_report_without_monitoring_says_what_it_could_not_read() -> None:
    report = {"start": "2026-12-02T06:00:00+00:00", "end": "2026-12-02T18:00:00+00:00",
              "pages": None, "firing_now": None, "slos": None, "agents": [],
              "dead_letters": [], "peak_submitted_per_s": 0.0, "peak_finished_per_s": 0.0,
              "capacity": None, "sources": {},
              "unavailable": ["slos: http://127.0.0.1:9090: ConnectError refused"]}
    text = markdown(report, "12h")
    assert "(no record of pages could be read)" in text
    assert "(Prometheus did not answer)" in text
    assert "run orchestrator loadtest --find-max" in text
    assert text.endswith("Not available: slos: http://127.0.0.1:9090: ConnectError refused")
