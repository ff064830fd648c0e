"""Every panel query of every generated dashboard, run on a live Prometheus that scraped a real
workload: no query may fail and none may come back empty.

No Grafana server runs here, so the test does what Grafana would do with the committed JSON:
substitute the template variables (``All`` -> the variable's ``allValue``, ``$__rate_interval``
and friends -> concrete durations), send each target's ``expr`` to ``/api/v1/query`` and each
``label_values()`` variable to ``/api/v1/label/NAME/values``.

The workload makes the incident panels have data too: a retry, a dead letter, cancels (queued and
running), a duplicate delivery, a model call, cache hits and misses, an integrity failure, a
broker outage between the API and RabbitMQ (publish failures) and a database outage between the
API and PostgreSQL (5xx answers, connection errors). Both outages go through a cuttable TCP
proxy in front of the real server, so nothing shared is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from operations.drills.fake_llm import FakeLLM
from operations.drills.proxy import CuttableProxy, proxy_to
from stack.native import NativeStack, Ports, Timings
from stack.services import enable_rabbitmq_metrics
from tests.services import (
    Env,
    corrupt_input,
    create_env,
    create_key,
    deliver_again,
    destroy_env,
    free_port,
    start_agent,
    start_api,
)
from tests.tasks import submit, wait_for, wait_for_event

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_DIR = ROOT / "stack" / "grafana" / "dashboards"
RABBITMQ_EXPORTER = "127.0.0.1:15692"

SCRAPE_INTERVAL_S = 1
RATE_INTERVAL = "30s"
"""What ``$__rate_interval`` becomes: with 1 s scrapes it holds ~30 samples, and the whole
workload (about 16 s) fits in it, so the rates of its counters are not flat zeros."""
RATE_INTERVAL_S = 30
GRAFANA_BUILTINS = {
    "__rate_interval": RATE_INTERVAL,
    "__interval": "5s",
    "__interval_ms": "5000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
SETTLE_S = 3 * SCRAPE_INTERVAL_S
"""After the workload: a few scrapes, so the last counters have two samples in every window."""
RETRY_S = 20
"""How long to keep re-running the queries that have no data yet before reporting them."""


VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*\S)\s*,\s*)?([a-zA-Z_]\w*)\s*\)\s*$")


# --- the dashboards ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    uid: str
    panel_id: int | None
    title: str
    ref_id: str
    expr: str

    def where(self) -> str:
        return f"{self.uid} panel {self.panel_id} {self.title!r} [{self.ref_id}]"


@dataclass(frozen=True)
class Variable:
    uid: str
    name: str
    query: str
    spec: dict[str, Any]

    def where(self) -> str:
        return f"{self.uid} variable ${self.name}"


def load_dashboards() -> dict[str, dict[str, Any]]:
    boards = [json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))]
    return {board["uid"]: board for board in boards}


def data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in board.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows nest their panels
    return [p for p in out if p.get("type") != "row"]


def panel_targets(uid: str, board: dict[str, Any]) -> list[Target]:
    return [Target(uid, panel.get("id"), panel.get("title", ""), target.get("refId", "?"),
                   target["expr"])
            for panel in data_panels(board) for target in panel.get("targets", [])
            if target.get("expr")]


def query_variables(uid: str, board: dict[str, Any]) -> list[Variable]:
    out = []
    for spec in board.get("templating", {}).get("list", []):
        if spec.get("type") == "query":
            query = spec.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            out.append(Variable(uid, spec["name"], text, spec))
    return out


def substitute(expr: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """``expr`` with ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]`` replaced;
    and the names nothing was known for."""
    unknown: list[str] = []

    def replace(found: re.Match[str]) -> str:
        name = next(group for group in found.groups() if group)
        if name in values:
            return values[name]
        unknown.append(name)
        return found.group(0)

    return VARIABLE.sub(replace, expr), unknown


def variable_value(spec: dict[str, Any], live_values: list[str]) -> str:
    """What Grafana substitutes with the variable's default (``All``) selection."""
    current = spec.get("current") or {}
    selected = current.get("value")
    if spec.get("includeAll") and (selected in (None, "$__all", ["$__all"])):
        if spec.get("allValue"):
            return str(spec["allValue"])
        return "(" + "|".join(re.escape(v) for v in live_values) + ")"
    if isinstance(selected, list):
        return "(" + "|".join(re.escape(str(v)) for v in selected) + ")"
    return str(selected or "")


# --- the live system -----------------------------------------------------------------------------


@dataclass
class Live:
    env: Env
    api_url: str
    key: str
    stack: NativeStack
    db_link: CuttableProxy
    broker_link: CuttableProxy
    agent_targets: list[str]
    rabbitmq: bool
    scraping_since: float
    problems: list[str] = field(default_factory=list)
    """Signals the workload could not produce (reported with the query failures)."""

    @property
    def prometheus_url(self) -> str:
        return self.stack.prometheus_url


def through(url: str, port: int) -> str:
    """``url`` with its host and port replaced by the proxy's (credentials and path kept)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def server_of(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


@pytest.fixture(scope="module")
def live(logs_dir: Path, tmp_path_factory: pytest.TempPathFactory,
         fake_llm: FakeLLM) -> Iterator[Live]:
    env = create_env(logs_dir, heartbeat_interval_s="0.5", shutdown_grace_s="1")
    native: NativeStack | None = None
    try:
        settings = env.settings
        with proxy_to(*server_of(settings.database.url, 5432)) as db_link, \
                proxy_to(*server_of(settings.broker.url, 5672)) as broker_link:
            # the API reaches PostgreSQL and RabbitMQ through proxies the test can cut
            api_url = start_api(env, environ=env.with_vars(
                database_url=through(settings.database.url, db_link.port),
                amqp_url=through(settings.broker.url, broker_link.port),
                db_pool_timeout_s="0.3"))
            key = create_key(env)
            main_port, sleeper_port = free_port(), free_port()
            start_agent(env, "--agents", "echo,fail,summarize,llm", "--concurrency", "8",
                        "--metrics-port", str(main_port),
                        environ=env.with_vars(llm_base_url=fake_llm.base_url,
                                              llm_api_key="sk-test"))
            # ``sleep`` has a worker of its own with one slot: a long task holds it, so the
            # next tasks stay queued long enough to be cancelled or corrupted
            start_agent(env, "--agents", "sleep", "--concurrency", "1", "--metrics-port",
                        str(sleeper_port), environ=env.with_vars(
                            prefetch="1", retry_base_delay_s="600", retry_max_delay_s="600"))
            agent_targets = [f"127.0.0.1:{main_port}", f"127.0.0.1:{sleeper_port}"]
            rabbitmq = enable_rabbitmq_metrics()
            native = NativeStack(
                state_dir=tmp_path_factory.mktemp("dashboards-live"),
                api_targets=[urlsplit(api_url).netloc], agent_targets=agent_targets,
                rabbitmq_targets=[RABBITMQ_EXPORTER] if rabbitmq else [],
                timings=Timings(scrape_interval=f"{SCRAPE_INTERVAL_S}s"),
                ports=Ports(prometheus=free_port(), alertmanager=free_port(),
                            page_inbox=free_port()))
            native.start()
            try:
                yield Live(env, api_url, key, native, db_link, broker_link, agent_targets,
                           rabbitmq, time.monotonic())
            finally:  # processes first: the proxies they talk through close next
                native.stop()
                for proc in env.processes:
                    proc.kill()
    finally:
        if native is not None:
            native.stop()
        destroy_env(env)


async def eventually(predicate: Callable[[], Awaitable[bool]], timeout_s: float,
                     interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if await predicate():
                return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval_s)


async def metric_total(http: httpx.AsyncClient, url: str, name: str) -> float:
    """The sum of every sample called ``name`` on a /metrics page."""
    text = (await http.get(url, timeout=5)).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name)


async def prometheus(http: httpx.AsyncClient, live: Live, path: str,
                     params: dict[str, str] | None = None) -> dict[str, Any]:
    response = await http.get(f"{live.prometheus_url}{path}", params=params, timeout=10)
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        return {"status": "error", "error": f"HTTP {response.status_code}: {response.text}"}
    return body


async def targets_up(http: httpx.AsyncClient, live: Live) -> bool:
    body = await prometheus(http, live, "/api/v1/targets", {"state": "active"})
    health = [(t["labels"]["job"], t["health"]) for t in body["data"]["activeTargets"]]
    expected = 1 + len(live.agent_targets) + (1 if live.rabbitmq else 0)
    return len(health) == expected and all(state == "up" for _, state in health)


# --- the workload --------------------------------------------------------------------------------


async def traffic(client: httpx.AsyncClient, env: Env) -> None:
    """Success, retry, dead letter, a model call, a summary, cache miss and hit, a duplicate."""
    submitted = await asyncio.gather(
        submit(client, "echo", {"n": 1}),
        submit(client, "fail", {"until_attempt": 2}),
        submit(client, "fail", {"always": True}, max_attempts=1),
        submit(client, "llm", {"prompt": "count my tokens"}),
        submit(client, "summarize", {"text": "Dashboards need data. Tests give it.",
                                     "sentences": 1}))
    done = [await wait_for(client, task["id"]) for task in submitted]
    ok, retried, dead, _, _ = done
    assert [t["status"] for t in done] == ["succeeded", "succeeded", "dead", "succeeded",
                                           "succeeded"], done
    assert retried["attempts"] == 2
    # a cache miss (entry deleted, read again, re-cached) and then a hit
    redis.Redis.from_url(env.settings.redis.url).delete(
        f"{env.settings.redis.prefix}task:{ok['id']}")
    assert (await client.get(f"/v1/tasks/{ok['id']}")).status_code == 200
    await asyncio.sleep(0.1)
    assert (await client.get(f"/v1/tasks/{ok['id']}")).status_code == 200
    # client errors: an unknown task, an unknown agent
    assert (await client.get(f"/v1/tasks/{uuid.uuid4()}")).status_code == 404
    unknown = await client.post("/v1/tasks", json={"agent": "no-such-agent"})
    assert unknown.status_code == 422, unknown.text
    # a second delivery of a finished task: the worker drops it
    await deliver_again(env, ok["id"])
    await wait_for_event(client, ok["id"], "duplicate_dropped")
    await wait_for_event(client, dead["id"], "published", status="dead")


async def cancel(client: httpx.AsyncClient, task_id: str) -> None:
    response = await client.post(f"/v1/tasks/{task_id}/cancel")
    assert response.status_code == 200, response.text


async def sleeper_incidents(client: httpx.AsyncClient, env: Env) -> None:
    """On the one-slot ``sleep`` worker: a cancel of a queued and of a running task, and an
    integrity failure (stored input changed after submission)."""
    holder = await submit(client, "sleep", {"seconds": 30})
    await wait_for(client, holder["id"], {"running"})
    corrupted = await submit(client, "sleep", {"seconds": 0})
    queued = await submit(client, "sleep", {"seconds": 0})
    await wait_for_event(client, corrupted["id"], "published")
    await wait_for_event(client, queued["id"], "published")
    await corrupt_input(env, corrupted["id"])
    await cancel(client, queued["id"])
    await cancel(client, holder["id"])
    assert (await wait_for(client, holder["id"]))["status"] == "cancelled"
    broken = await wait_for(client, corrupted["id"])
    assert broken["status"] == "dead"
    assert "does not match its checksum" in broken["error"]
    assert (await wait_for(client, queued["id"]))["status"] == "cancelled"


async def sleeper_backlog(client: httpx.AsyncClient, env: Env) -> None:
    """Leave work waiting when the queries run: a retry due in minutes (an attempt that timed
    out; the sleep worker backs off for minutes), a long task running and one queued behind it.
    On the way, a second integrity failure and cancel, so their rates move too."""
    timed_out = await submit(client, "sleep", {"seconds": 5}, timeout_s=0.3)
    assert (await wait_for(client, timed_out["id"], {"retrying", "dead"}))["status"] == "retrying"
    holder = await submit(client, "sleep", {"seconds": 4})
    await wait_for(client, holder["id"], {"running"})
    corrupted = await submit(client, "sleep", {"seconds": 0})
    cancelled = await submit(client, "sleep", {"seconds": 0})
    running = await submit(client, "sleep", {"seconds": 300})
    waiting = await submit(client, "sleep", {"seconds": 0})
    for task in (corrupted, cancelled, running, waiting):
        await wait_for_event(client, task["id"], "published")
    await corrupt_input(env, corrupted["id"])
    # a scrape between the first cancels and this one, or the counter's first sample already
    # holds both and its rate stays 0
    await asyncio.sleep(1.2 * SCRAPE_INTERVAL_S)
    await cancel(client, cancelled["id"])
    assert (await wait_for(client, corrupted["id"]))["status"] == "dead"
    await wait_for(client, running["id"], {"running"})
    assert (await client.get(f"/v1/tasks/{waiting['id']}")).json()["status"] == "queued"
    assert (await client.get(f"/v1/tasks/{timed_out['id']}")).json()["status"] == "retrying"


async def broker_outage(client: httpx.AsyncClient, live: Live) -> None:
    """The API's link to RabbitMQ breaks: tasks are accepted, the relay's publishes fail."""
    metrics_url = f"{live.api_url}/metrics"
    failures = "orchestrator_outbox_publish_failures_total"
    before = await metric_total(client, metrics_url, failures)
    live.broker_link.cut()
    try:
        accepted = [await submit(client, "echo", {"outage": "broker", "n": n})
                    for n in range(3)]

        async def failed() -> bool:
            return await metric_total(client, metrics_url, failures) > before

        if not await eventually(failed, 10):
            live.problems.append(f"workload: {failures} did not move while the API's link to"
                                 " RabbitMQ was cut")
        await asyncio.sleep(1.5 * SCRAPE_INTERVAL_S)  # a scrape sees the broker down
    finally:
        live.broker_link.restore()
    for task in accepted:
        assert (await wait_for(client, task["id"], timeout_s=40))["status"] == "succeeded"


async def database_outage(client: httpx.AsyncClient, live: Live) -> None:
    """The API's link to PostgreSQL breaks: submissions get 503, the pool counts errors."""
    metrics_url = f"{live.api_url}/metrics"
    errors = "orchestrator_db_connection_errors_total"
    before = await metric_total(client, metrics_url, errors)
    statuses = []
    live.db_link.cut()
    try:
        for n in range(3):  # spread over scrapes, so the 5xx rate is not zero
            response = await client.post("/v1/tasks", json={"agent": "echo", "input": n})
            statuses.append(response.status_code)
            await asyncio.sleep(0.8 * SCRAPE_INTERVAL_S)

        async def counted() -> bool:
            return await metric_total(client, metrics_url, errors) > before

        if not await eventually(counted, 10):
            live.problems.append(f"workload: {errors} did not move while the API's link to"
                                 " PostgreSQL was cut")
    finally:
        live.db_link.restore()
    if not any(status >= 500 for status in statuses):
        live.problems.append(f"workload: no 5xx answer while PostgreSQL was cut: {statuses}")

    async def ready() -> bool:
        return (await client.get("/health/ready")).status_code == 200

    assert await eventually(ready, 30), "the API did not recover from the database outage"


# --- running the queries -------------------------------------------------------------------------


@dataclass
class Outcome:
    samples: int = 0
    values: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def has_data(self) -> bool:
        return self.error is None and self.samples > 0

    @property
    def informative(self) -> bool:
        """At least one value that is a number other than zero (a drawn line, not a flat 0
        or a gap)."""
        return any(math.isfinite(v) and v != 0 for v in self.values)


async def instant(http: httpx.AsyncClient, live: Live, expr: str) -> Outcome:
    body = await prometheus(http, live, "/api/v1/query", {"query": expr})
    if body.get("status") != "success":
        return Outcome(error=f"{body.get('errorType', 'error')}: {body.get('error')}")
    if body.get("warnings"):
        return Outcome(error=f"warnings: {body['warnings']}")
    data = body["data"]
    kind, result = data["resultType"], data["result"]
    if kind == "vector":
        return Outcome(len(result), [float(r["value"][1]) for r in result])
    if kind == "matrix":
        values = [float(v[1]) for r in result for v in r["values"]]
        return Outcome(len(values), values)
    if kind == "scalar":
        return Outcome(1, [float(result[1])])
    return Outcome(error=f"unexpected result type {kind}")


async def label_values(http: httpx.AsyncClient, live: Live,
                       query: str) -> tuple[list[str], str | None]:
    """The values of a ``label_values([selector,] label)`` variable query, or why none."""
    found = LABEL_VALUES.match(query)
    if not found:
        return [], f"not a label_values() query: {query!r}"
    selector, label = found.groups()
    params = {"match[]": selector} if selector else None
    body = await prometheus(http, live, f"/api/v1/label/{label}/values", params)
    if body.get("status") != "success":
        return [], f"{body.get('errorType', 'error')}: {body.get('error')}"
    values = [str(v) for v in body["data"]]
    return values, None if values else "no values"


async def test_every_dashboard_query_returns_data_on_a_live_prometheus(live: Live) -> None:
    started = time.monotonic()
    boards = load_dashboards()
    assert boards, f"no dashboards in {DASHBOARD_DIR}"
    async with httpx.AsyncClient(base_url=live.api_url, timeout=15,
                                 headers={"Authorization": f"Bearer {live.key}"}) as client:
        assert await eventually(lambda: targets_up(client, live), 20), "scrape targets not up"

        # Given a workload that goes through every path, incidents included
        await traffic(client, live.env)  # creates the series: later increments move rates
        await broker_outage(client, live)
        await database_outage(client, live)
        await sleeper_incidents(client, live.env)
        await traffic(client, live.env)
        await sleeper_backlog(client, live.env)
        workload_s = time.monotonic() - started

        # And Prometheus has full rate windows and a few scrapes after the last event
        ready_at = max(live.scraping_since + RATE_INTERVAL_S + SCRAPE_INTERVAL_S,
                       time.monotonic() + SETTLE_S)
        await asyncio.sleep(max(0.0, ready_at - time.monotonic()))

        # When the template variables are read the way Grafana reads them
        failures: list[str] = list(live.problems)
        variables = [v for uid, board in boards.items() for v in query_variables(uid, board)]
        values_of: dict[tuple[str, str], str] = {}
        with_values = 0
        for variable in variables:
            found, error = await label_values(client, live, variable.query)
            if error:
                failures.append(f"{variable.where()}: {error}\n    {variable.query}")
            else:
                with_values += 1
            values_of[(variable.uid, variable.name)] = variable_value(variable.spec, found)

        # Then every panel query, with the variables substituted, succeeds and has data
        targets = [t for uid, board in boards.items() for t in panel_targets(uid, board)]
        exprs: dict[Target, str] = {}
        for target in targets:
            values = {**GRAFANA_BUILTINS, **{name: value for (uid, name), value
                                             in values_of.items() if uid == target.uid}}
            expr, unknown = substitute(target.expr, values)
            if unknown:
                failures.append(f"{target.where()}: unknown variables {sorted(set(unknown))}"
                                f"\n    {target.expr}")
            else:
                exprs[target] = expr

        outcomes: dict[Target, Outcome] = {}
        deadline = time.monotonic() + RETRY_S
        pending = list(exprs)
        while pending:  # a panel whose series are just appearing gets a few more scrapes
            for target in pending:
                outcomes[target] = await instant(client, live, exprs[target])
            pending = [t for t in pending if outcomes[t].error is None
                       and not outcomes[t].has_data]
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(SCRAPE_INTERVAL_S)

    for target, outcome in outcomes.items():
        if outcome.error:
            failures.append(f"{target.where()}: {outcome.error}\n    {exprs[target]}")
        elif not outcome.has_data:
            failures.append(f"{target.where()}: no samples\n    {exprs[target]}")

    panels = [(uid, p.get("id")) for uid, board in boards.items() for p in data_panels(board)]
    with_data = sum(1 for o in outcomes.values() if o.has_data)
    panels_with_data = {(t.uid, t.panel_id) for t, o in outcomes.items() if o.has_data}
    flat = [t for t, o in outcomes.items() if o.has_data and not o.informative]
    print(f"\n{len(boards)} dashboards, {len(panels)} panels, {len(targets)} queries:"
          f" {with_data} returned data ({len(panels_with_data)} panels with data);"
          f" {len(variables)} label_values() variables, {with_values} with values")
    print(f"rabbitmq exporter scraped: {live.rabbitmq}; workload {workload_s:.1f}s,"
          f" total {time.monotonic() - started:.1f}s; $__rate_interval={RATE_INTERVAL}")
    if flat:
        print(f"{len(flat)} queries have data but only 0 or NaN right now"
              " (the series exist; their rate or ratio is flat at the query instant):")
        for target in flat:
            print(f"  {target.where()}: {outcomes[target].values[:4]}")
    assert not failures, (f"{len(failures)} dashboard queries fail or have no data:\n"
                          + "\n".join(failures))
