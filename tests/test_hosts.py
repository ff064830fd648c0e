"""Several hosts, not only several processes: two API and two agent processes, each in a
network namespace of its own (a veth link to a bridge), reach PostgreSQL, Redis and RabbitMQ
over those links; under a steady load one agent's link is cut, then one API's. Every task an API
accepted still succeeds once, on the processes that remain: the broker hands the cut agent's
deliveries to the other, the other API's relay publishes what the cut one had committed."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from operations.drills.proxy import CuttableProxy
from service.api.readiness import LIVE, wait_until_answers
from service.ports import free_port
from tests.netns import Hosts
from tests.services import Env, Proc, create_key

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]

RATE = 20.0
HEARTBEAT_S = 5
"""The AMQP heartbeat here (``?heartbeat=`` on the URL): the broker gives a silent
connection's deliveries to another consumer after about two of them."""


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    machines = Hosts(["api1", "api2", "agent1", "agent2"])
    machines.create()
    try:
        yield machines
    finally:
        machines.destroy()


def _through(proxy: CuttableProxy, url: str, gateway: str) -> str:
    """``url`` with its host and port replaced by the proxy's address on the bridge."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@" if credentials else ""
    return parts._replace(netloc=f"{netloc}{gateway}:{proxy.port}").geturl()


@pytest.mark.timeout(360)
async def test_cut_links_of_an_agent_and_an_api_lose_nothing(own_env: Env, hosts: Hosts) -> None:
    settings = own_env.settings
    with ExitStack() as stack:
        proxies = {}
        for name, url in (("database", settings.database.url),
                          ("redis", settings.redis.url), ("amqp", settings.broker.url)):
            parts = urlsplit(url)
            proxies[name] = stack.enter_context(CuttableProxy(
                parts.hostname or "127.0.0.1", parts.port or 0, listen_host=hosts.gateway))
        remote = own_env.with_vars(
            database_url=_through(proxies["database"], settings.database.url, hosts.gateway),
            redis_url=_through(proxies["redis"], settings.redis.url, hosts.gateway),
            amqp_url=_through(proxies["amqp"], settings.broker.url, hosts.gateway)
            + f"?heartbeat={HEARTBEAT_S}")
        urls = []
        for name in ("api1", "api2"):
            host, port = hosts[name], free_port()
            proc = Proc(own_env, ["api", "--port", str(port)],
                        {**remote, "ORCH_API_HOST": host.address}, host.launcher)
            url = f"http://{host.address}:{port}"
            assert wait_until_answers(url, path=LIVE, timeout_s=60, gone=proc.exited), \
                proc.output()
            urls.append(url)
        for name in ("agent1", "agent2"):
            host = hosts[name]
            Proc(own_env, ["agent", "--agents", "sleep", "--concurrency", "8"],
                 {**remote, "ORCH_METRICS_HOST": host.address}, host.launcher
                 ).wait_for_output("consuming", 60)
        key = create_key(own_env)
        accepted: list[str] = []
        refused: list[str] = []
        clients = [httpx.AsyncClient(base_url=u, timeout=5,
                                     headers={"Authorization": f"Bearer {key}"}) for u in urls]
        stop = asyncio.Event()
        load = asyncio.create_task(_load(clients, accepted, refused, stop))
        await asyncio.sleep(8)
        hosts.cut("agent1")
        await asyncio.sleep(8)
        hosts.cut("api1")
        await asyncio.sleep(10)
        stop.set()
        await load
        for client in clients:
            await client.aclose()
        missing = await _wait_finished(settings.database.url, accepted, 120)
        # the cut hosts come back; what they still held must not finish a task a second time
        hosts.restore("agent1")
        hosts.restore("api1")
        await asyncio.sleep(HEARTBEAT_S * 3)
        succeeded_twice = _succeeded_twice(settings.database.url)
        pause_s = _longest_pause_s(settings.database.url, accepted)
        print(f"\nhosts: {len(accepted)} accepted, {len(refused)} refused (the cut API's),"
              f" {len(missing)} unfinished, {succeeded_twice} succeeded twice,"
              f" longest pause between finishes {pause_s:.1f} s")
    assert accepted and missing == [] and succeeded_twice == 0
    assert _unfinished(settings.database.url, accepted) == []
    assert len(refused) < len(accepted)


async def _load(clients: list[httpx.AsyncClient], accepted: list[str], refused: list[str],
                stop: asyncio.Event) -> None:
    pending: set[asyncio.Task[None]] = set()

    async def one(client: httpx.AsyncClient) -> None:
        try:
            answer = await client.post("/v1/tasks", json={"agent": "sleep",
                                                          "input": {"seconds": 0.3}})
        except httpx.HTTPError as exc:
            refused.append(type(exc).__name__)
            return
        (accepted if answer.status_code == 202 else refused).append(
            answer.json()["id"] if answer.status_code == 202 else str(answer.status_code))

    started = time.monotonic()
    for n, client in enumerate(itertools.cycle(clients)):
        if stop.is_set():
            break
        task = asyncio.create_task(one(client))
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(max(0.0, started + (n + 1) / RATE - time.monotonic()))
    await asyncio.gather(*pending)


async def _wait_finished(database_url: str, accepted: list[str], timeout_s: float
                         ) -> list[str]:
    """The accepted tasks still not succeeded after ``timeout_s`` (or once none is left)."""
    deadline = time.monotonic() + timeout_s
    missing = _unfinished(database_url, accepted)
    while missing and time.monotonic() < deadline:
        await asyncio.sleep(1)
        missing = _unfinished(database_url, accepted)
    return missing


def _unfinished(database_url: str, accepted: list[str]) -> list[str]:
    with psycopg.connect(database_url) as conn:
        done = {row[0] for row in conn.execute(
            "SELECT id::text FROM tasks WHERE status = 'succeeded'")}
    return [task for task in accepted if task not in done]


def _succeeded_twice(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM (SELECT task_id FROM task_events"
                           " WHERE kind = 'succeeded' GROUP BY task_id HAVING count(*) > 1) d"
                           ).fetchone()
    return int(row[0]) if row else 0


def _longest_pause_s(database_url: str, accepted: list[str]) -> float:
    """The longest time between two successive finishes of the accepted tasks."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT coalesce(max(gap), 0) FROM (SELECT extract(epoch FROM finished_at - lag("
            "finished_at) OVER (ORDER BY finished_at)) AS gap FROM tasks"
            " WHERE id::text = ANY(%s)) g", (accepted,)).fetchone()
    return float(row[0]) if row else 0.0
