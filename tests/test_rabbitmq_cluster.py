"""Losing a RabbitMQ node under load, on a three-node cluster of the test's own (never the
machine's node): the API and two agents run against the cluster's node list; under a steady
load the node that leads the agent's queue is stopped, later started again. Nothing accepted is
lost, nothing completes twice, the time without progress is measured and reported, and the
cluster alerts (RabbitmqNodeDown, QuorumQueueMembersOffline), evaluated by a Prometheus of the
test's own that scrapes the three nodes, fire while the node is down and resolve after."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from alerts.rules import threshold_rule
from alerts.thresholds import THRESHOLDS
from catalog import names
from catalog.jobs import RABBITMQ_JOB
from service.ports import free_port
from tests.rabbitmq_cluster import LocalCluster
from tests.services import Env, api_client, start_agent, start_api, wait_until

pytestmark = pytest.mark.integration

RATE = 25.0
"""Tasks submitted per second, before, during and after the node is down."""
BEFORE_S, DOWN_S, AFTER_S = 8.0, 15.0, 8.0


CLUSTER_ALERTS = ("RabbitmqNodeDown", "QuorumQueueMembersOffline")
ALERT_FOR = "5s"
"""The alerts' ``for`` here (their expressions as rendered; the committed ``for`` is 1m)."""


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    nodes = LocalCluster(3)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def prometheus(cluster: LocalCluster) -> Iterator[str]:
    """A Prometheus scraping the cluster's nodes every second with the cluster alerts."""
    folder = Path(tempfile.mkdtemp(prefix="cluster-prometheus-"))
    rules = [{**threshold_rule(t, severity, value), "for": ALERT_FOR}
             for t in THRESHOLDS if t.alert in CLUSTER_ALERTS for severity, value in t.levels()]
    (folder / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "cluster",
                                                                   "rules": rules}]}))
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(folder / "rules.yml")],
        "scrape_configs": [{"job_name": RABBITMQ_JOB, "metrics_path": "/metrics/per-object",
                            "scrape_timeout": "900ms", "static_configs": [{"targets": [
                                f"127.0.0.1:{n.prometheus_port}" for n in cluster.nodes]}]}]}))
    port = free_port()
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={folder / 'prometheus.yml'}",
         f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{url}/-/ready"), 30)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _watch_alerts(prometheus: str, seen: list[tuple[float, frozenset[str]]],
                        stop: asyncio.Event) -> None:
    """Record (time, the cluster alerts firing) every half second."""
    async with httpx.AsyncClient(base_url=prometheus, timeout=5) as http:
        while not stop.is_set():
            alerts = (await http.get("/api/v1/alerts")).json()["data"]["alerts"]
            seen.append((time.monotonic(), frozenset(
                a["labels"]["alertname"] for a in alerts if a["state"] == "firing")))
            await asyncio.sleep(0.5)


def _first(seen: list[tuple[float, frozenset[str]]], since: float, alert: str,
           firing: bool) -> float | None:
    """Seconds from ``since`` until ``alert`` was first seen firing (or not firing)."""
    for at, names_firing in seen:
        if at >= since and (alert in names_firing) == firing:
            return at - since
    return None


async def _steady_load(client: httpx.AsyncClient, accepted: list[str], refused: list[str],
                       stop: asyncio.Event) -> None:
    """Submit at ``RATE`` until ``stop``; each submission waits for its answer on its own."""
    pending: set[asyncio.Task[None]] = set()

    async def one(n: int) -> None:
        try:
            answer = await client.post("/v1/tasks", json={"agent": "echo", "input": {"n": n}})
        except httpx.HTTPError as exc:
            refused.append(f"{type(exc).__name__}")
            return
        if answer.status_code == 202:
            accepted.append(answer.json()["id"])
        else:
            refused.append(f"{answer.status_code} {answer.text[:200]}")

    n, started = 0, time.monotonic()
    while not stop.is_set():
        task = asyncio.create_task(one(n))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
        await asyncio.sleep(max(0.0, started + n / RATE - time.monotonic()))
    await asyncio.gather(*pending)


@dataclass
class Outcome:
    lost: list[str]
    """Accepted tasks that did not succeed."""
    doubled: list[str]
    """Tasks that succeeded more than once."""
    started_twice: int
    finished: list[datetime]


def _outcome(database_url: str, accepted: list[str]) -> Outcome:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT t.id::text, t.status, t.finished_at,"
            " count(*) FILTER (WHERE e.kind = 'succeeded') AS successes,"
            " count(*) FILTER (WHERE e.kind = 'started') AS starts"
            " FROM tasks t JOIN task_events e ON e.task_id = t.id GROUP BY t.id").fetchall()
    by_id = {row[0]: row for row in rows}
    return Outcome(
        lost=[i for i in accepted if i not in by_id or by_id[i][1] != "succeeded"],
        doubled=[i for i, row in by_id.items() if row[3] > 1],
        started_twice=sum(1 for row in by_id.values() if row[4] > 1),
        finished=sorted(row[2] for row in by_id.values() if row[2] is not None))


def _longest_pause(finished: list[datetime], since: datetime) -> float:
    """The longest time without a task finishing, from ``since`` on."""
    after = [since, *(t for t in finished if t >= since)]
    return max((b - a).total_seconds() for a, b in itertools.pairwise(after))


@pytest.mark.timeout(480)  # the cluster's start (about 40 s) and stop count too
async def test_losing_the_node_that_leads_the_agent_queue_loses_and_doubles_nothing(
        own_env: Env, cluster: LocalCluster, prometheus: str) -> None:
    vhost = own_env.name
    cluster.add_vhost(vhost)
    environ = own_env.with_vars(amqp_url=cluster.urls(vhost), quorum_group_size="3")
    url = start_api(own_env, environ=environ)
    for _ in range(2):
        start_agent(own_env, "--agents", "echo", "--concurrency", "8", environ=environ)
    queue = names.agent_queue("echo")
    accepted: list[str] = []
    refused: list[str] = []
    stop = asyncio.Event()
    seen: list[tuple[float, frozenset[str]]] = []
    watching = asyncio.Event()
    watch = asyncio.create_task(_watch_alerts(prometheus, seen, watching))
    async with api_client(own_env, url) as client:
        load = asyncio.create_task(_steady_load(client, accepted, refused, stop))
        await asyncio.sleep(BEFORE_S)
        assert all(not firing for _, firing in seen), seen[-1]  # a healthy cluster: quiet
        lost = cluster.node(cluster.leader(queue, vhost))
        lost_mono = time.monotonic()
        members = json.loads(lost.ctl("list_connections", "name", "--formatter", "json").stdout)
        lost_at = datetime.now().astimezone()
        await asyncio.to_thread(lost.stop)
        stopped_s = (datetime.now().astimezone() - lost_at).total_seconds()
        survivor = next(n for n in cluster.nodes if n is not lost)
        new_leader = await asyncio.to_thread(cluster.leader, queue, vhost, survivor)
        await asyncio.sleep(DOWN_S)
        await asyncio.to_thread(lost.start)
        await asyncio.to_thread(lost.await_startup)
        back_mono = time.monotonic()
        await asyncio.sleep(AFTER_S)
        stop.set()
        await load
    for _ in range(120):  # until both alerts resolved
        if seen and not seen[-1][1] and seen[-1][0] > back_mono:
            break
        await asyncio.sleep(0.5)
    watching.set()
    await watch
    fired = {alert: _first(seen, lost_mono, alert, True) for alert in CLUSTER_ALERTS}
    resolved = {alert: _first(seen, back_mono, alert, False) for alert in CLUSTER_ALERTS}
    database = own_env.settings.database.url
    deadline = time.monotonic() + 120
    while True:
        outcome = _outcome(database, accepted)
        if not outcome.lost or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    pause = _longest_pause(outcome.finished, lost_at)
    print(f"\ncluster drill: {len(accepted)} accepted, {len(refused)} refused,"
          f" lost {len(outcome.lost)}, completed twice {len(outcome.doubled)},"
          f" started twice {outcome.started_twice}; stopped {lost.name} (led {queue},"
          f" {len(members)} client connections) in {stopped_s:.1f} s, new leader {new_leader};"
          f" longest time without a task finishing after the loss: {pause:.1f} s;"
          + "".join(f" {a} fired after {fired[a]:.1f} s and resolved {resolved[a]:.1f} s after"
                    " the node was back;" for a in CLUSTER_ALERTS
                    if fired[a] is not None and resolved[a] is not None))
    assert accepted and not refused, refused[:5]
    assert outcome.lost == [] and outcome.doubled == []
    assert new_leader != lost.name
    assert None not in (*fired.values(), *resolved.values()), (fired, resolved)
