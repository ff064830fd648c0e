"""promtool unit tests for every alert: it fires above its threshold after ``for`` (with the exact
labels and annotations) and stays quiet below it."""

from __future__ import annotations

import re
from typing import Any

from alerts.model import Severity
from alerts.rules import ALERTS_GROUP, SLOS_GROUP, rule_group
from alerts.slos import FAST_WAIT, MODEL_WAIT, SLOS, alert_name
from alerts.thresholds import THRESHOLDS
from catalog.names import DEMO_AGENTS

EVAL_TIME = "45m"
EVAL_INTERVAL = "5m"
"""How often the rules are evaluated in the tests (the series have a sample every minute):
every ``for`` and window of the rules is a multiple of it or shorter than the time they are
checked at, and five times fewer evaluations keep the tests quick."""
SLO_EVAL_TIME = "5h"
_LABEL_REF = re.compile(r"\{\{ \$labels\.(\w+) \}\}")


def _expected(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    def render(text: str) -> str:
        return _LABEL_REF.sub(lambda found: labels.get(found.group(1), ""), text)

    return {"exp_labels": {**rule["labels"], **labels},
            "exp_annotations": {k: render(v) for k, v in rule["annotations"].items()}}


def _series(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"series": series, "values": v} for series, v in values.items()]


def threshold_tests() -> list[dict[str, Any]]:
    rules = rule_group(ALERTS_GROUP)["groups"][0]["rules"]
    tests = []
    for threshold in THRESHOLDS:
        mine = [r for r in rules if r["alert"] == threshold.alert]
        above = {k: v[0] for k, v in threshold.test_series.items()}
        below = {k: v[1] for k, v in threshold.test_series.items()}
        tests.append({"name": f"{threshold.alert} fires above its threshold",
                      "interval": "1m", "input_series": _series(above),
                      "alert_rule_test": [{
                          "eval_time": EVAL_TIME, "alertname": threshold.alert,
                          "exp_alerts": [_expected(r, threshold.test_labels) for r in mine]}]})
        tests.append({"name": f"{threshold.alert} stays quiet below its threshold",
                      "interval": "1m", "input_series": _series(below),
                      "alert_rule_test": [{"eval_time": EVAL_TIME,
                                           "alertname": threshold.alert, "exp_alerts": []}]})
        if threshold.quiet_series:
            tests.append({"name": f"{threshold.alert} stays quiet when another alert names"
                                  " the incident", "interval": "1m",
                          "input_series": _series(threshold.quiet_series),
                          "alert_rule_test": [{"eval_time": EVAL_TIME,
                                               "alertname": threshold.alert,
                                               "exp_alerts": []}]})
    return tests


def slo_tests() -> list[dict[str, Any]]:
    """Every SLO: a total outage pages and tickets; a clean run stays quiet."""
    slo_rules = rule_group(SLOS_GROUP)["groups"][0]["rules"]
    tests = []
    for slo in SLOS:
        name = alert_name(slo)
        mine = [r for r in slo_rules if r.get("alert") == name]
        bad, good = _slo_series(slo.name)
        firing = [_expected(r, {}) for r in mine
                  if r["labels"]["severity"] in (Severity.CRITICAL, Severity.WARNING)]
        tests.append({"name": f"{name}: a total outage burns the budget", "interval": "1m",
                      "input_series": _series(bad),
                      "alert_rule_test": [{"eval_time": SLO_EVAL_TIME, "alertname": name,
                                           "exp_alerts": firing}]})
        tests.append({"name": f"{name}: a clean run keeps the budget", "interval": "1m",
                      "input_series": _series(good),
                      "alert_rule_test": [{"eval_time": SLO_EVAL_TIME, "alertname": name,
                                           "exp_alerts": []}]})
        if slo.name == "task-success":  # nothing ever succeeded: the counter has no series
            tests.append({"name": f"{name}: every task failing from the start burns the budget",
                          "interval": "1m",
                          "input_series": _series({k: v for k, v in bad.items()
                                                   if v != "0+0x400"}),
                          "alert_rule_test": [{"eval_time": SLO_EVAL_TIME, "alertname": name,
                                               "exp_alerts": firing}]})
        if slo.name == "queue-wait":  # a model agent's tasks waiting 30 s are late too
            slow_model = {k.replace('agent="echo"', 'agent="llm"'): v
                          for k, v in bad.items() if MODEL_WAIT.bucket not in k}
            bucket = next(k for k in bad if MODEL_WAIT.bucket in k).replace("echo", "llm")
            slow_model[bucket] = "0+0x400"
            tests.append({"name": f"{name}: model calls waiting past their target burn it",
                          "interval": "1m", "input_series": _series(slow_model),
                          "alert_rule_test": [{"eval_time": SLO_EVAL_TIME, "alertname": name,
                                               "exp_alerts": firing}]})
        few = {k: v.replace("0+60x400", "0+1x45") for k, v in bad.items()}
        tests.append({"name": f"{name}: a few bad events in a quiet hour page nobody",
                      "interval": "1m", "input_series": _series(few),
                      "alert_rule_test": [{"eval_time": "40m", "alertname": name,
                                           "exp_alerts": []}]})
        if slo.name != "api-availability":  # task SLOs leave the demo agents out
            demo = {k.replace('agent="echo"', f'agent="{DEMO_AGENTS[0]}"'): v
                    for k, v in bad.items()}
            tests.append({"name": f"{name}: the demo agents burn no budget", "interval": "1m",
                          "input_series": _series({**demo, **good}),
                          "alert_rule_test": [{"eval_time": SLO_EVAL_TIME, "alertname": name,
                                               "exp_alerts": []}]})
    return tests


def _slo_series(slo: str) -> tuple[dict[str, str], dict[str, str]]:
    """Input series for each SLO: everything failing, then nothing failing (6 hours)."""
    from catalog import metrics as m
    from catalog.metrics import series_name as s

    if slo == "api-availability":
        req = s(m.HTTP_REQUESTS)
        return ({f'{req}{{route="/v1/tasks",status="500"}}': "0+60x400",
                 f'{req}{{route="/v1/tasks",status="202"}}': "0+0x400"},
                {f'{req}{{route="/v1/tasks",status="500"}}': "0+0x400",
                 f'{req}{{route="/v1/tasks",status="202"}}': "0+60x400"})
    if slo == "task-success":
        dead, ok = s(m.TASKS_DEAD_LETTERED), s(m.TASKS_SUCCEEDED)
        return ({f'{dead}{{agent="echo"}}': "0+60x400", f'{ok}{{agent="echo"}}': "0+0x400"},
                {f'{dead}{{agent="echo"}}': "0+0x400", f'{ok}{{agent="echo"}}': "0+60x400"})
    # every task waits 5 s: late for a fast agent (echo), on time for a model agent (llm)
    count, bucket = s(m.QUEUE_WAIT, "_count"), s(m.QUEUE_WAIT, "_bucket")

    def waited_5s(agent: str) -> dict[str, str]:
        return {f'{count}{{agent="{agent}"}}': "0+60x400",
                f'{bucket}{{agent="{agent}",le="{FAST_WAIT.bucket}"}}': "0+0x400",
                f'{bucket}{{agent="{agent}",le="{MODEL_WAIT.bucket}"}}': "0+60x400"}
    return waited_5s("echo"), waited_5s("llm")


def promtool_tests(rule_file: str, group: str) -> dict[str, Any]:
    """The promtool test file of one rule group (its rule file alone, so each evaluates only
    its own rules)."""
    tests = threshold_tests() if group == ALERTS_GROUP else slo_tests()
    return {"rule_files": [rule_file], "evaluation_interval": EVAL_INTERVAL, "tests": tests}
