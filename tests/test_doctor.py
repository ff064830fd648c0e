"""``orchestrator doctor``: each tree's verdicts from the facts that lead to them, "all clear" on a
healthy system, and real faults named within a bounded time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from catalog import metrics, names
from catalog.metrics import series_name
from operations.doctor.engine import Fork, Verdict, verdicts, walk
from operations.doctor.facts import (
    ApiFacts,
    BrokerFacts,
    DatabaseFacts,
    Facts,
    MonitoringFacts,
    ProcessFacts,
    QueueFacts,
    RedisFacts,
    TaskFacts,
)
from operations.doctor.report import ALERT_SCENARIOS, Report, explain_firing, human
from operations.doctor.trees import TREES
from service.gauges.disk import Usage
from service.ports import free_port
from tests.services import ORCHESTRATOR, Env, start_agent, start_api

GIB = 2**30


def healthy() -> Facts:
    """The facts of a healthy system: one echo worker, nothing waiting."""
    return Facts(
        api=ApiFacts(live=True, ready=True, ready_latency_s=0.004,
                     gauges={series_name(metrics.DB_POOL_USAGE): 0.1,
                             series_name(metrics.DB_POOL_WAITING): 0,
                             series_name(metrics.EVENT_LOOP_LAG): 0.001}),
        database=DatabaseFacts(reachable=True, latency_s=0.0004, connections=(8, 100)),
        tasks=TaskFacts(by_status={"echo": {"succeeded": 40}}, known=True, deployed=["echo"],
                        recent={"echo": {"started": 40, "succeeded": 40}},
                        live_workers=[{"worker_id": "w1", "agents": ["echo"], "in_flight": 0,
                                       "concurrency": 16}]),
        broker=BrokerFacts(reachable=True, queues={
            names.agent_queue("echo"): QueueFacts(0, 1),
            names.DEAD_LETTER_QUEUE: QueueFacts(0, 0)}),
        redis=RedisFacts(reachable=True, latency_s=0.0003),
        monitoring=MonitoringFacts(),
        processes=[ProcessFacts("api", 10, True, 80 * 2**20, 40, 1024)],
        disks={"state": Usage(60 * GIB, 100 * GIB)})


def _stalled(f: Facts) -> None:
    f.tasks.oldest_waiting_s = {"echo": 400.0}
    f.tasks.by_status["echo"]["queued"] = 30


def _no_worker(f: Facts) -> None:
    _stalled(f)
    f.tasks.live_workers = []


def _not_consuming(f: Facts) -> None:
    _stalled(f)
    f.broker.queues[names.agent_queue("echo")] = QueueFacts(30, 0)


def _slots_full(f: Facts) -> None:
    _stalled(f)
    f.tasks.live_workers[0]["in_flight"] = 16


def _hung(f: Facts) -> None:
    f.tasks.running_past_timeout = {"echo": 3}


def _held_pool(f: Facts) -> None:
    f.api.gauges[series_name(metrics.DB_POOL_USAGE)] = 1.0
    f.api.gauges[series_name(metrics.DB_POOL_WAITING)] = 12
    f.database.long_transactions = [{"pid": 4242, "state": "idle in transaction",
                                     "age_s": 95.0, "query": "SELECT pg_sleep(600)"}]


def _failing(f: Facts) -> None:
    f.tasks.recent["echo"] = {"started": 100, "retry_scheduled": 40, "dead_lettered": 5}


CASES: dict[str, tuple[Callable[[Facts], None], int, str]] = {
    "API process down": (lambda f: setattr(f.api, "live", False), 1, "ApiDown"),
    "pool held by long transactions": (_held_pool, 2, "DbPoolExhausted"),
    "pool used up by load": (
        lambda f: f.api.gauges.update({series_name(metrics.DB_POOL_USAGE): 0.97}),
        2, "DbPoolUsageHigh"),
    "RabbitMQ down": (lambda f: setattr(f, "broker", BrokerFacts(error="refused")),
                      3, "RabbitmqDown"),
    "Redis down or hung": (lambda f: setattr(f, "redis", RedisFacts(error="timed out")),
                           4, "RedisDown"),
    "PostgreSQL down": (lambda f: setattr(f, "database", DatabaseFacts(error="refused")),
                        5, "DatabaseDown"),
    "failing agent": (_failing, 6, "TaskFailureRatioHigh"),
    "hung agent": (_hung, 7, "TasksRunningPastTimeout"),
    "slow agent": (_slots_full, 7, "OldestQueuedTaskTooOld"),
    "corrupted row": (lambda f: setattr(f.tasks, "integrity_failures", 1), 8,
                      "DataIntegrityCheckFailed"),
    "lost messages": (lambda f: f.tasks.recent["echo"].update(republished=500), 9,
                      "MessagesLost"),
    "outbox stuck": (lambda f: setattr(f.tasks, "outbox_oldest_s", 900.0), 9,
                     "OutboxBacklog"),
    "leaking agent": (lambda f: setattr(f.processes[0], "resident_bytes", 900 * 2**20), 10,
                      "ProcessMemoryHigh"),
    "slow database": (lambda f: setattr(f.database, "latency_s", 0.2), 11, "ApiLatencyHigh"),
    "disk nearly full": (lambda f: f.disks.update(database=Usage(2 * GIB, 100 * GIB)), 12,
                         "DiskSpaceLow"),
    "fd exhaustion": (lambda f: setattr(f.processes[0], "open_fds", 1000), 12,
                      "FileDescriptorsExhausting"),
    "agent gone": (_no_worker, 13, "AgentsMissing"),
    "workers not consuming": (_not_consuming, 13, "QueueWithoutConsumers"),
    "duplicate deliveries": (lambda f: f.tasks.recent["echo"].update(duplicate_dropped=30), 14,
                             "DuplicateDeliveriesHigh"),
    "dead letters growing": (lambda f: f.tasks.recent["echo"].update(dead_lettered=30), 15,
                             "DeadLetterQueueGrowing"),
    "scrape target gone": (lambda f: f.monitoring.targets_down.append("agent a:9101"), 16,
                           "ScrapeTargetDown"),
}


@pytest.mark.unit
def test_a_healthy_system_is_all_clear() -> None:
    facts = healthy()
    diagnosis = walk(TREES, facts)
    assert diagnosis.findings == [] and diagnosis.unknown == {}
    report = Report(facts, diagnosis, _deployment())
    assert report.exit_code == 0
    assert human(report).startswith("all clear")


@pytest.mark.unit
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_fault_leads_to_its_scenario_and_runbook_section(case: str) -> None:
    fault, scenario, alert = CASES[case]
    facts = healthy()
    fault(facts)
    found = {(f.scenario.number, f.alert): f for f in walk(TREES, facts).findings}
    assert (scenario, alert) in found, found
    finding = found[(scenario, alert)]
    assert finding.paths and all(p.startswith("tree ") for p in finding.paths)
    assert finding.evidence, "a finding shows its numbers"
    report = Report(facts, walk(TREES, facts), _deployment())
    assert report.exit_code == 1
    assert f"/runbook#{alert.lower()}" in human(report)


@pytest.mark.unit
def test_every_verdict_opens_the_runbook_section_of_its_own_scenario() -> None:
    reached = [v for tree in TREES for v in verdicts(tree.root)]
    assert len({(v.scenario.number, v.alert) for v in reached}) >= 20
    for verdict in reached:
        assert ALERT_SCENARIOS[verdict.alert] == verdict.scenario, verdict
    assert {number for _, number, _ in CASES.values()} == set(range(1, 17))


@pytest.mark.unit
def test_a_branch_is_a_record() -> None:
    extra = Fork((*TREES[0].root.no.branches,  # type: ignore[union-attr]
                  Verdict(TREES[0].root.yes.scenario, "ApiDown", "always")))  # type: ignore[union-attr]
    assert len(verdicts(extra)) == len(verdicts(TREES[0].root.no)) + 1  # type: ignore[union-attr, arg-type]


@pytest.mark.unit
def test_an_alert_firing_that_no_tree_reached_is_a_finding_of_its_scenario() -> None:
    facts = healthy()
    facts.monitoring.firing = [{"alert": "CacheHitRatioLow", "severity": "warning",
                                "since": "2026-12-02T00:00:00Z", "labels": {}}]
    diagnosis = walk(TREES, facts)
    explain_firing(facts, diagnosis)
    assert [(f.scenario.number, f.alert) for f in diagnosis.findings] == [(4, "CacheHitRatioLow")]
    assert "firing since 2026-12-02T00:00:00Z" in diagnosis.findings[0].evidence[0]


@pytest.mark.unit
def test_findings_are_ranked_critical_first() -> None:
    facts = healthy()
    _failing(facts)
    facts.database = DatabaseFacts(error="refused")
    order = [f.severity.value for f in walk(TREES, facts).findings]
    assert order == sorted(order, key=lambda s: s != "critical") and order[0] == "critical"


def _deployment() -> Any:
    from alerts.links import LOCAL
    return LOCAL


def _doctor(env: Env, **changes: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    out = subprocess.run([*ORCHESTRATOR, "doctor", "--json"], capture_output=True, text=True,
                         env={**os.environ, **env.with_vars(**changes)}, timeout=60)
    return out.returncode, json.loads(out.stdout), time.monotonic() - started


def _found(answer: dict[str, Any]) -> set[tuple[int, str]]:
    return {(f["scenario"], f["alert"]) for f in answer["findings"]}


@pytest.mark.integration
def test_doctor_is_all_clear_on_a_healthy_system_then_names_an_agent_gone(own_env: Env) -> None:
    port = free_port()
    start_api(own_env, port=port)
    worker = start_agent(own_env, "--agents", "echo")
    code, answer, _ = _doctor(own_env, api_port=str(port))
    assert (code, answer["status"]) == (0, "all clear"), answer
    assert "1 live worker for 1 deployed agent type" in answer["summary"]
    # When the only echo worker stops
    worker.terminate()
    code, answer, _ = _doctor(own_env, api_port=str(port))
    assert code == 1
    assert (13, "AgentsMissing") in _found(answer)
    finding = next(f for f in answer["findings"] if f["alert"] == "AgentsMissing")
    assert finding["runbook"] == f"http://127.0.0.1:{port}/runbook#agentsmissing"
    assert any("echo: no live worker" in line for line in finding["evidence"])


@contextmanager
def _silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.mark.integration
def test_doctor_with_postgresql_hung_finishes_in_under_10_s_and_names_it(own_env: Env) -> None:
    with _silent_server() as port:
        code, answer, seconds = _doctor(
            own_env, database_url=f"postgresql://postgres@127.0.0.1:{port}/x")
    assert seconds < 10
    assert code == 1
    assert (5, "DatabaseDown") in _found(answer)
    assert answer["unknown"], "questions that needed the database are left open, said so"


@pytest.mark.integration
def test_doctor_names_a_hung_redis(own_env: Env) -> None:
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no", "--enable-debug-command", "yes"],
                              stdout=subprocess.DEVNULL)
    try:
        client = ["redis-cli", "-p", str(port)]
        deadline = time.monotonic() + 10
        while subprocess.run([*client, "ping"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        hung = subprocess.Popen([*client, "debug", "sleep", "8"], stdout=subprocess.DEVNULL)
        time.sleep(0.3)
        code, answer, seconds = _doctor(own_env, redis_url=f"redis://127.0.0.1:{port}/0")
        hung.wait(15)
    finally:
        server.kill()
        server.wait(10)
    assert code == 1 and seconds < 10
    redis = [f for f in answer["findings"] if f["scenario"] == 4]
    assert redis and "did not answer PING within 3s: hung" in " ".join(redis[0]["evidence"])
