"""The paging drill, end to end on loopback: the native stack (Prometheus and Alertmanager from
the Debian packages, with the generated rules and config, and the local page inbox speaking the
PagerDuty Events API v2) watches an API and one ``echo`` agent; stopping the agent pages with the
runbook link, starting it again resolves the page.

Only timings are shortened (alert ``for:``, scrape and group intervals); expressions, labels,
annotations, routes and receivers are the generated ones.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from alerts.links import Deployment
from alerts.rules import SERVICE
from catalog.jobs import AGENT_JOB, API_JOB
from stack.native import NativeStack, Ports, Timings
from stack.page_inbox import Inbox
from tests.services import Env, Proc, create_env, destroy_env, free_port, start_agent, start_api

pytestmark = pytest.mark.integration

FAST = Timings(scrape_interval="1s", rule_for="10s", group_wait="1s", group_interval="5s")
ROUTING_KEY = "0123456789abcdef0123456789abcdef"  # 32 characters, like a PagerDuty integration key
SERVED_AGENT = "echo"
PAGED_ALERT = "AgentsMissing"
"""The page the fault must cause. Only ``echo`` has ever had a worker here, so the other
built-in agent types are not deployed and page nobody, before or after the fault."""
PAGE_TIMEOUT_S = 60
RESOLVE_TIMEOUT_S = 45


@dataclass
class Stack:
    env: Env
    api_url: str
    agent: Proc
    agent_port: int
    native: NativeStack
    inbox: Inbox
    rules: dict[str, Any]

    @property
    def prometheus_url(self) -> str:
        return self.native.prometheus_url

    @property
    def alertmanager_url(self) -> str:
        return self.native.alertmanager_url

    def prometheus(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.prometheus_url}{path}", params=params, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        """Prometheus' pending and firing alerts of the orchestrator."""
        return [a for a in self.prometheus("/api/v1/alerts")["alerts"]
                if a["labels"].get("service") == SERVICE]

    def rule(self, alert: str, severity: str) -> dict[str, Any]:
        return next(r for g in self.rules["groups"] for r in g["rules"]
                    if r.get("alert") == alert and r["labels"]["severity"] == severity)


def wait_for(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s}s")
        time.sleep(interval_s)


@pytest.fixture
def stack(logs_dir: Path, tmp_path: Path) -> Iterator[Stack]:
    env = create_env(logs_dir, heartbeat_ttl_s="2", heartbeat_interval_s="0.5",
                     shutdown_grace_s="1")
    native: NativeStack | None = None
    try:
        api_url = start_api(env)
        agent = start_agent(env, "--agents", SERVED_AGENT)
        agent_port = int(urlsplit(agent.metrics_url()).port or 0)
        ports = Ports(prometheus=free_port(), alertmanager=free_port(), page_inbox=free_port())
        deployment = Deployment.from_settings(env.settings.with_overrides(
            api_port=urlsplit(api_url).port, prometheus_port=ports.prometheus))
        native = NativeStack(
            state_dir=tmp_path / "stack", api_targets=[urlsplit(api_url).netloc],
            agent_targets=[f"127.0.0.1:{agent_port}"], timings=FAST, routing_key=ROUTING_KEY,
            ports=ports, deployment=deployment)
        native.start()
        yield Stack(env, api_url, agent, agent_port, native, Inbox(native.pages_file),
                    native.rules())
    finally:
        if native is not None:
            native.stop()
        destroy_env(env)


def rules_healthy(stack: Stack) -> list[dict[str, Any]] | None:
    """The rule groups once every rule has been evaluated (health no longer 'unknown')."""
    groups: list[dict[str, Any]] = stack.prometheus("/api/v1/rules")["groups"]
    if len(groups) != len(stack.rules["groups"]):
        return None
    if any(r["health"] == "unknown" for g in groups for r in g["rules"]):
        return None
    return groups


def targets_up(stack: Stack) -> dict[str, str] | None:
    active = stack.prometheus("/api/v1/targets", state="active")["activeTargets"]
    health = {t["labels"]["job"]: t["health"] for t in active}
    return health if health == {API_JOB: "up", AGENT_JOB: "up"} else None


def unexpected_critical(stack: Stack) -> list[dict[str, Any]]:
    """Critical alerts pending or firing (none may, before the fault: the agent types the API
    knows but no worker ever served are not deployed, so ``AgentsMissing`` ignores them)."""
    return [a for a in stack.alerts() if a["labels"]["severity"] == "critical"]


def firing(stack: Stack, alert: str, **labels: str) -> dict[str, Any] | None:
    return next((a for a in stack.alerts() if a["state"] == "firing"
                 and a["labels"]["alertname"] == alert
                 and all(a["labels"].get(k) == v for k, v in labels.items())), None)


def detail(event: Any, name: str) -> Any:
    """``payload.custom_details[name]`` of an event, ``None`` if it has no such thing."""
    try:
        return event["payload"]["custom_details"].get(name)
    except (TypeError, KeyError, AttributeError):
        return None


def test_stopping_the_only_agent_pages_pagerduty_and_the_page_resolves_when_it_is_back(
        stack: Stack, record_property: Any) -> None:
    started = time.monotonic()
    # The generated rules load and evaluate without error, and both targets are scraped
    groups = wait_for(lambda: rules_healthy(stack), 15, "every rule evaluated")
    assert [g["name"] for g in groups] == [g["name"] for g in stack.rules["groups"]]
    assert [len(g["rules"]) for g in groups] == [len(g["rules"]) for g in stack.rules["groups"]]
    broken = [(r["name"], r["health"], r.get("lastError")) for g in groups for r in g["rules"]
              if r["health"] != "ok" or r.get("lastError")]
    assert broken == []
    wait_for(lambda: targets_up(stack), 15, "both scrape targets up")

    # Prometheus has discovered the Alertmanager (alerts sent before that are dropped)
    wait_for(stack.native.alertmanager_discovered, 20, "Alertmanager active in Prometheus")

    # Baseline: no critical alert of the orchestrator pending or firing, for 3 evaluations
    calm_since = [time.monotonic()]

    def calm() -> bool:
        if unexpected_critical(stack):
            calm_since[0] = time.monotonic()
        return time.monotonic() - calm_since[0] >= 3

    try:
        wait_for(calm, 20, "no critical alert at baseline")
    except TimeoutError:
        pytest.fail(f"critical alerts at baseline: {unexpected_critical(stack)}")
    baseline = {a["labels"]["alertname"] + "/" + a["labels"].get("agent", "")
                for a in stack.alerts()}
    print(f"\nbaseline alerts (pending or firing): {sorted(baseline)}")
    pages_before = {e["dedup_key"] for e in stack.inbox.events()}

    # When an operator stops the only agent process (SIGTERM: it drains and deregisters)
    fault_wall = time.time()
    assert stack.agent.terminate(timeout_s=20) == 0

    # Then PagerDuty gets a trigger for the critical alert, through the generated route
    rule = stack.rule(PAGED_ALERT, "critical")
    runbook = rule["annotations"]["runbook_url"]
    entry = stack.inbox.wait_for(
        lambda e: e["event_action"] == "trigger" and e["dedup_key"] not in pages_before
        and e["payload"]["custom_details"].get("runbook_url") == runbook, PAGE_TIMEOUT_S)
    page = entry["event"]
    fault_to_page = entry["received_at"] - fault_wall
    print(f"{PAGED_ALERT}: fault -> PagerDuty trigger in {fault_to_page:.1f}s"
          f" (for: {FAST.rule_for}, scrape/evaluation 1s, group_wait 1s)")

    assert page["routing_key"] == ROUTING_KEY
    assert page["event_action"] == "trigger"
    assert page["dedup_key"]
    payload = page["payload"]
    assert payload["severity"] == "critical"
    summary = rule["annotations"]["summary"].replace("{{ $labels.agent }}", SERVED_AGENT)
    assert payload["summary"] == summary == f"No live {SERVED_AGENT} worker"
    assert payload["source"]
    details = payload["custom_details"]
    assert details["runbook_url"] == runbook
    assert runbook == f"{stack.api_url}/runbook#agentsmissing"  # this API's own address
    assert details["dashboard_url"] == rule["annotations"]["dashboard_url"]
    assert details["summary"] == summary
    assert details["scenario"] == rule["labels"]["scenario"]
    assert {"href": runbook, "text": "Runbook"} in page["links"]
    assert {"href": rule["annotations"]["dashboard_url"], "text": "Dashboard"} in page["links"]

    # And only for the agent type that had a worker; the scrape-based alert, whose domain is
    # workers alive but not scraped, stays quiet
    missing = [a for a in stack.alerts() if a["labels"]["alertname"] == "AgentsMissing"]
    assert [a["labels"]["agent"] for a in missing] == [SERVED_AGENT]
    assert firing(stack, "AgentTargetsAbsent") is None

    # When an agent process is started again (on the scraped port)
    back_wall = time.time()
    start_agent(stack.env, "--agents", SERVED_AGENT, "--metrics-port", str(stack.agent_port))

    # Then the page resolves: a resolve event for the same dedup key
    resolved = stack.inbox.wait_for(
        lambda e: e["event_action"] == "resolve" and e["dedup_key"] == page["dedup_key"],
        RESOLVE_TIMEOUT_S)
    assert resolved["event"]["routing_key"] == ROUTING_KEY
    recovery_to_resolve = resolved["received_at"] - back_wall
    print(f"{PAGED_ALERT}: agent back -> PagerDuty resolve in {recovery_to_resolve:.1f}s")
    # Every page was one PagerDuty accepts (one notification group per alert and agent, so
    # each page has its alert's own summary)
    assert stack.inbox.entries("rejected") == []
    record_property("fault_to_page_s", round(fault_to_page, 2))
    record_property("recovery_to_resolve_s", round(recovery_to_resolve, 2))
    events = [(e["event_action"], e["payload"]["summary"]) for e in stack.inbox.events()]
    print(f"test body took {time.monotonic() - started:.1f}s; PagerDuty events: {events}")
