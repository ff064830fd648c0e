"""The metric contract: every metric in the catalog is exposed, with its labels, and moves."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from catalog import metrics, names
from catalog.metrics import label_names
from tests.services import (
    Env,
    Proc,
    corrupt_input,
    create_env,
    create_key,
    deliver_again,
    destroy_env,
    start_agent,
)
from tests.tasks import submit, wait_for, wait_for_event

pytestmark = pytest.mark.integration

Samples = dict[str, dict[frozenset[tuple[str, str]], float]]
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def scrape(url: str) -> tuple[Samples, dict[str, set[str]]]:
    """Sample values by name and label set, and each family's label names (``le`` aside)."""
    text = httpx.get(url, timeout=10).text
    values: Samples = defaultdict(dict)
    labels: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[sample.name][frozenset(sample.labels.items())] = sample.value
            labels[family.name].update(k for k in sample.labels if k != "le")
    return values, labels


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(frozenset(labels.items()), 0.0)


def family_name(metric: metrics.AnyMetric) -> str:
    return metrics.series_name(metric).removesuffix("_total")


async def test_every_catalog_metric_is_exposed_with_its_labels_and_moves(
        client: httpx.AsyncClient, api_url: str, worker: Proc, env: Env) -> None:
    agent_url = worker.metrics_url()
    api_before, _ = scrape(f"{api_url}/metrics")
    agent_before, _ = scrape(agent_url)

    # Given a workload touching every path: success, retry, dead letter, cancel, duplicate,
    # a model call, a cache hit and a cache miss
    ok = await wait_for(client, (await submit(client, "echo", {"n": 1}))["id"])
    retried = await wait_for(client, (await submit(client, "fail", {"until_attempt": 2}))["id"])
    dead = await wait_for(client, (await submit(client, "fail", {"always": True},
                                                max_attempts=1))["id"])
    await wait_for(client, (await submit(client, "llm", {"prompt": "count my tokens"}))["id"])
    queued = await submit(client, "sleep", {"seconds": 1})  # no sleep worker in this env
    await wait_for_event(client, queued["id"], "published")
    assert (await client.post(f"/v1/tasks/{queued['id']}/cancel")).status_code == 200
    redis.Redis.from_url(env.settings.redis.url).delete(
        f"{env.settings.redis.prefix}task:{ok['id']}")
    assert (await client.get(f"/v1/tasks/{ok['id']}")).status_code == 200  # miss, re-cached
    await asyncio.sleep(0.1)
    assert (await client.get(f"/v1/tasks/{ok['id']}")).status_code == 200  # hit
    # and a task whose stored input was corrupted after submission (scenario 8)
    corrupted = await submit(client, "sleep", {"seconds": 0})
    await wait_for_event(client, corrupted["id"], "published")
    await corrupt_input(env, corrupted["id"])
    sleeper = start_agent(env, "--agents", "sleep")
    try:
        broken = await wait_for(client, corrupted["id"])
        integrity_metrics = scrape(sleeper.metrics_url())
    finally:
        sleeper.terminate()
    assert broken["status"] == "dead"
    assert "does not match its checksum" in broken["error"]
    await deliver_again(env, ok["id"])
    await wait_for_event(client, ok["id"], "duplicate_dropped")
    await wait_for_event(client, dead["id"], "published", status="dead")
    assert ok["status"] == "succeeded" and dead["status"] == "dead"
    assert retried["status"] == "succeeded"  # on its second attempt, after one retry
    assert retried["result"] == {"succeeded_on_attempt": 2}
    await asyncio.sleep(1.2)  # one probe interval: pool, up and slot gauges refreshed

    api, api_labels = scrape(f"{api_url}/metrics")
    agent, agent_labels = scrape(agent_url)
    sleeper_samples, sleeper_labels = integrity_metrics

    # Then every metric of the catalog is exposed by the API or an agent, with its labels
    missing, wrong_labels = [], []
    exposed_metrics = (*metrics.INSTRUMENTED, *metrics.SAMPLED,
                       *(m for m in metrics.EXTERNAL if m.exposed))
    for metric in exposed_metrics:
        family = family_name(metric)
        exposed = [labels[family] for labels in (api_labels, agent_labels, sleeper_labels)
                   if family in labels]
        if not exposed:
            missing.append(family)
        elif not any(found == set(label_names(metric)) for found in exposed):
            wrong_labels.append((family, exposed, label_names(metric)))
    assert not missing, f"catalog metrics not exposed: {missing}"
    assert not wrong_labels

    # And the values moved as the workload says
    def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(agent, agent_before, "orchestrator_tasks_succeeded_total", agent="echo") >= 1
    assert delta(agent, agent_before, "orchestrator_tasks_retried_total", agent="fail") >= 1
    assert delta(agent, agent_before, "orchestrator_tasks_dead_lettered_total", agent="fail") >= 1
    assert delta(agent, agent_before, "orchestrator_duplicate_deliveries_total", agent="echo") == 1
    assert delta(agent, agent_before, "orchestrator_task_end_to_end_seconds_count",
                 agent="echo", outcome="succeeded") >= 1
    assert delta(agent, agent_before, "orchestrator_model_calls_total", agent="llm",
                 model="gpt-4o-mini") == 1
    assert delta(agent, agent_before, "orchestrator_model_input_tokens_total", agent="llm",
                 model="gpt-4o-mini") == 3
    assert delta(api, api_before, "orchestrator_tasks_submitted_total", agent="echo") >= 1
    assert delta(api, api_before, "orchestrator_tasks_cancelled_total", agent="sleep") == 1
    assert delta(api, api_before, "orchestrator_http_requests_total", route="/v1/tasks",
                 method="POST", status="202") >= 5
    assert delta(api, api_before, "orchestrator_cache_requests_total", outcome="miss") >= 1
    assert delta(api, api_before, "orchestrator_cache_requests_total", outcome="hit") >= 1
    assert value(api, "orchestrator_tasks", agent="sleep", status="cancelled") >= 1
    assert value(api, "orchestrator_queue_consumers", queue=names.agent_queue("echo")) == 1
    assert value(api, "orchestrator_dead_letters_open", agent="fail") >= 1
    assert value(api, "orchestrator_agents_live", agent="echo") == 1
    assert value(api, "orchestrator_db_up") == 1 and value(agent, "orchestrator_db_up") == 1
    # 8 slots for each of the session worker's 4 agent types (SESSION_AGENTS), all free by now
    assert value(agent, "orchestrator_agent_slots_available") == 8 * 4
    assert value(sleeper_samples, "orchestrator_integrity_check_failures_total",
                 agent="sleep") == 1


def test_no_task_metric_carries_an_unbounded_label() -> None:
    allowed = {"agent", "queue", "outcome", "route", "method", "status", "operation", "model",
               "action", "volume", "version", "python", "component", "limit", "kind"}
    assert metrics.INSTRUMENTED and metrics.SAMPLED, "nothing to check"
    for metric in (*metrics.INSTRUMENTED, *metrics.SAMPLED, *metrics.EXTERNAL):
        assert set(label_names(metric)) <= allowed | {"job", "instance", "generation", "vhost"}, \
            metric  # vhost: RabbitMQ's own series, one per virtual host


@pytest.fixture
def two_worker_env(logs_dir: Path) -> Env:
    environment = create_env(logs_dir)
    yield environment  # type: ignore[misc]
    destroy_env(environment)


async def test_several_server_processes_report_the_same_totals_on_every_scrape(
        two_worker_env: Env) -> None:
    from tests.services import start_api, wait_until

    url = start_api(two_worker_env, workers=2)
    start_agent(two_worker_env, "--agents", "echo")
    key = create_key(two_worker_env)
    async with httpx.AsyncClient(base_url=url, timeout=15,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        accepted = await asyncio.gather(*(submit(client, "echo", n) for n in range(40)))

    def totals_now() -> tuple[float, float]:
        samples, _ = scrape(f"{url}/metrics")
        return (value(samples, "orchestrator_tasks_submitted_total", agent="echo"),
                value(samples, "orchestrator_http_requests_total", route="/v1/tasks",
                      method="POST", status="202"))

    # each worker publishes its request tallies every probe interval (0.5 s here)
    wait_until(lambda: totals_now() == (len(accepted), len(accepted)), timeout_s=5)
    totals = set()
    for _ in range(10):
        totals.add(totals_now())
    assert totals == {(len(accepted), len(accepted))}
    samples, _ = scrape(f"{url}/metrics")
    assert value(samples, "process_resident_memory_bytes") > 0
