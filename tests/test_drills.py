"""The drills: one per scenario of the incident guide, each naming alerts that exist; and the
whole set run for real on drill stacks of their own (``orchestrator drill run --all``)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from alerts import scenarios
from operations.doctor.report import ALERT_SCENARIOS
from operations.drills.drills import DRILLS
from tests.services import ORCHESTRATOR


@pytest.mark.unit
def test_every_scenario_of_the_guide_has_a_drill() -> None:
    assert {d.scenario.number for d in DRILLS} == {s.number for s in scenarios.ALL}
    assert len({d.name for d in DRILLS}) == len(DRILLS)


@pytest.mark.unit
def test_each_drill_expects_alerts_of_its_own_scenario() -> None:
    for drill in DRILLS:
        assert drill.alerts, drill.name
        for alert in drill.alerts:
            assert ALERT_SCENARIOS[alert] == drill.scenario, (drill.name, alert)
        assert set(drill.tolerated) <= set(ALERT_SCENARIOS), drill.name


@pytest.mark.integration
@pytest.mark.timeout(1800)
def test_every_drill_passes_on_stacks_of_its_own() -> None:
    """Each drill injects its fault, gets its page with a runbook link that answers and no
    unrelated critical page, hears the doctor name its scenario, mitigates, and sees the
    resolve. Timings are the drill ones (``for`` 10 s, threshold windows 30 s)."""
    runner = subprocess.Popen([*ORCHESTRATOR, "drill", "run", "--all", "--parallel", "3",
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={k: v for k, v in os.environ.items()
                                              if not k.startswith("ORCH_")})
    try:
        stdout, stderr = runner.communicate(timeout=1700)
    except subprocess.TimeoutExpired:
        runner.terminate()  # SIGTERM: the runner takes its drill stacks down
        runner.communicate(timeout=180)
        raise
    assert stdout.startswith("{"), stderr[-3000:]
    report = json.loads(stdout)
    failed = {d["drill"]: d["problems"] for d in report["drills"] if not d["passed"]}
    rows = [f"{d['scenario']:>2} {d['drill']:20} page {d['fault_to_page_s']}s,"
            f" doctor {d['doctor']}, resolve {d['recovery_to_resolve_s']}s"
            for d in report["drills"]]
    print("\n" + "\n".join(rows))
    assert len(report["drills"]) == len(DRILLS)
    assert failed == {} and runner.returncode == 0
