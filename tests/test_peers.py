"""The peer benchmark (``python -m loadtest.peers``) runs every system against the real
PostgreSQL, RabbitMQ and Redis and reports each one's rate, ratio and CPU by group; its ceiling
leaves every task succeeded. No timing is asserted: only that each system did the work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from loadtest.deployment import bench_settings
from loadtest.peers.__main__ import summary
from loadtest.peers.cpu import GROUPS, group_of, per_task_us
from loadtest.peers.systems import Round

TASKS = 300


@pytest.mark.unit
def test_the_summary_takes_medians_and_ratios_to_this_project() -> None:
    rounds = [Round("orchestrator", 10, 100.0, {"api": 50.0}),
              Round("orchestrator", 10, 300.0, {"api": 70.0}),
              Round("dramatiq", 10, 400.0, {"dramatiq": 20.0}),
              Round("dramatiq", 10, 400.0, {"dramatiq": 30.0})]
    result = summary(rounds)
    assert result["orchestrator"]["tasks_per_s"] == 200.0
    assert result["orchestrator"]["cpu_us_per_task"] == {"api": 60.0}
    assert result["dramatiq"]["orchestrator_ratio"] == 0.5
    assert per_task_us(dict.fromkeys(GROUPS, 0.0), {**dict.fromkeys(GROUPS, 0.0),
                                                     "redis": 0.002}, 10) == {"redis": 200.0}
    assert group_of(os.getpid(), os.getpid()) == "benchmark"


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_every_system_does_the_work_and_is_reported() -> None:
    done = subprocess.run([sys.executable, "-m", "loadtest.peers", "--tasks", str(TASKS),
                           "--rounds", "1", "--json"], capture_output=True, text=True,
                          timeout=580)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    systems = result["systems"]
    assert set(systems) == {"orchestrator", "celery-threads", "celery-prefork", "dramatiq",
                            "ceiling"}
    for name, figures in systems.items():
        assert figures["tasks_per_s"] > 0 and len(figures["rounds"]) == 1, name
        assert figures["orchestrator_ratio"] > 0, name
    assert systems["orchestrator"]["orchestrator_ratio"] == 1.0
    assert {"api", "agent", "postgresql"} <= set(systems["orchestrator"]["cpu_us_per_task"])
    assert "celery" in systems["celery-prefork"]["cpu_us_per_task"]
    assert "dramatiq" in systems["dramatiq"]["cpu_us_per_task"]
    assert "rabbitmq" in systems["ceiling"]["cpu_us_per_task"]
    with psycopg.connect(bench_settings().database.url) as conn:  # the ceiling's rows, last
        statuses = conn.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall()
    assert statuses == [("succeeded", TASKS)]


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_sleeping_agent_benchmark_runs_both_sides() -> None:
    done = subprocess.run([sys.executable, "-m", "loadtest.bench_sleepers", "--tasks", "80",
                           "--rate", "100", "--sleep-s", "0.5", "--concurrency", "80",
                           "--celery-tasks", "2", "--json"], capture_output=True, text=True,
                          timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    ours = result["orchestrator"]
    assert ours["tasks"] == 80 and ours["failed"] == 0 and ours["rate"] > 0
    assert 1 < ours["in_flight"] <= 80  # many at once, never more than the slots
    assert ours["rss_mib"] > 10 and ours["lag_p99_ms"] is not None
    assert result["celery_prefork"]["tasks"] == 2 and result["celery_prefork"]["rate"] > 0


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_big_data_benchmark_measures_both_sides() -> None:
    database = f"orch_test_big_{uuid.uuid4().hex[:8]}"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "loadtest.bigdata", "--tasks-rows", "3000", "--tasks", "100",
             "--scrape-s", "2", "--metrics-cache-s", "0.2", "--submit-rate", "20",
             "--submit-s", "2", "--database", database, "--rounds", "1", "--json"],
            capture_output=True, text=True, timeout=280)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout)
        assert result["empty"]["tasks_rows"] == 0
        assert result["big"]["tasks_rows"] >= 3000 and result["big"]["event_rows"] >= 4 * 3000
        for side in ("empty", "big"):
            figures = result[side]
            assert figures["scrapes"] > 0 and figures["end_to_end_rate"] > 0, side
            assert figures["sampler_db_core_share"] > 0, side  # the sampler's statements ran
    finally:
        with psycopg.connect(bench_settings().database.url.rsplit("/", 1)[0] + "/postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
