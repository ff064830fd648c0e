"""The facts the troubleshooting trees ask for, gathered at once, each source under its own
timeout: an unreachable or hung dependency is a fact too (its ``error``), never a hang.

Sources: the API (``/health/live``, ``/health/ready``, ``/metrics``), PostgreSQL (its server,
the task tables, the worker registry), RabbitMQ (the agent and dead-letter queues), Redis,
Prometheus and Alertmanager when they answer, the processes a running stack recorded, and the
free space of the volumes written to.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from catalog import metrics, names
from catalog.metrics import series_name
from operations.monitoring import monitoring
from service.broker.queues import queue_depths
from service.db.outbox import OutboxStore
from service.db.pool import open_pool
from service.db.server import ServerStats
from service.db.task_stats import TaskStats
from service.db.workers import WorkerRegistry
from service.dependencies import reach_redis
from service.errors import one_line
from service.gauges.disk import Usage, database_is_local, parse_volumes, usage
from service.procinfo import alive, open_fds, resident_bytes
from service.settings import Settings
from stack.supervisor import load_record

T = TypeVar("T")

SOURCE_TIMEOUT_S = 6.0
"""No source may take longer: the whole run ends within a few seconds of this."""
HTTP_TIMEOUT_S = 3.0
RECENT_WINDOW_S = 600.0
"""'Recently' for event counts (failure ratio, dead letters, duplicates, republished)."""
LONG_TRANSACTION_S = 10.0
"""A transaction open longer holds its connection (and its locks) too long for this system."""


@dataclass
class ApiFacts:
    live: bool = False
    ready: bool = False
    failing: dict[str, str] = field(default_factory=dict)
    """Dependencies ``/health/ready`` reports down (``postgresql``, ``rabbitmq``, ``redis``),
    with the API's error."""
    ready_latency_s: float | None = None
    gauges: dict[str, float] = field(default_factory=dict)
    """Selected series from the API's ``/metrics`` (pool usage, waiting, loop lag)."""
    error: str = ""


@dataclass
class DatabaseFacts:
    reachable: bool = False
    latency_s: float | None = None
    connections: tuple[int, int] | None = None
    long_transactions: list[dict[str, Any]] = field(default_factory=list)
    lock_waits: int = 0
    data_directory: str | None = None
    error: str = ""


@dataclass
class TaskFacts:
    by_status: dict[str, dict[str, int]] = field(default_factory=dict)
    oldest_waiting_s: dict[str, float] = field(default_factory=dict)
    running_past_timeout: dict[str, int] = field(default_factory=dict)
    outbox_unpublished: int = 0
    outbox_oldest_s: float = 0.0
    recent: dict[str, dict[str, int]] = field(default_factory=dict)
    integrity_failures: int = 0
    live_workers: list[dict[str, Any]] = field(default_factory=list)
    deployed: list[str] = field(default_factory=list)
    known: bool = False
    error: str = ""


@dataclass
class QueueFacts:
    ready: int
    consumers: int


@dataclass
class BrokerFacts:
    reachable: bool = False
    queues: dict[str, QueueFacts] = field(default_factory=dict)
    error: str = ""


@dataclass
class RedisFacts:
    reachable: bool = False
    latency_s: float | None = None
    error: str = ""


@dataclass
class MonitoringFacts:
    prometheus_url: str = ""
    alertmanager_url: str = ""
    prometheus_up: bool = False
    alertmanager_up: bool = False
    targets_down: list[str] = field(default_factory=list)
    firing: list[dict[str, Any]] = field(default_factory=list)
    """Active alerts from Alertmanager: name, severity, since, labels."""
    expected: bool = False
    """A stack is recorded as running here, so its Prometheus and Alertmanager should answer."""


@dataclass
class ProcessFacts:
    name: str
    pid: int
    running: bool
    resident_bytes: int | None
    open_fds: int | None
    max_fds: int | None


@dataclass
class Facts:
    api: ApiFacts
    database: DatabaseFacts
    tasks: TaskFacts
    broker: BrokerFacts
    redis: RedisFacts
    monitoring: MonitoringFacts
    processes: list[ProcessFacts]
    disks: dict[str, Usage]
    seconds: float = 0.0

    def agents(self) -> list[str]:
        """Every agent type the facts mention."""
        found = {*self.tasks.by_status, *self.tasks.deployed, *self.tasks.oldest_waiting_s}
        for worker in self.tasks.live_workers:
            found.update(worker["agents"])
        return sorted(found)


async def _bounded(what: str, work: Awaitable[T], timeout_s: float) -> T:
    try:
        return await asyncio.wait_for(work, timeout_s)
    except TimeoutError:
        raise TimeoutError(f"{what} did not answer within {timeout_s:g}s") from None


async def _api(settings: Settings) -> ApiFacts:
    facts = ApiFacts()
    base = settings.api.base_url
    key = settings.operator_key  # an admin key gets the readiness details
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT_S,
                                 headers=headers) as client:
        try:
            facts.live = (await client.get("/health/live")).status_code == 200
            started = time.perf_counter()
            ready = await client.get("/health/ready")
            facts.ready_latency_s = time.perf_counter() - started
            answer = ready.json() if ready.content else {}
            facts.ready = ready.status_code == 200 and answer.get("status") == "ready"
            facts.failing = {name: str(dep.get("error") or "down")
                             for name, dep in answer.get("dependencies", {}).items()
                             if dep.get("status") != "up"}
            page = (await client.get(
                settings.api.metrics_url(settings.telemetry.metrics_host))).text
        except (httpx.HTTPError, ValueError) as exc:
            facts.error = f"{base}: {one_line(exc) or type(exc).__name__}"
            return facts
    wanted = {series_name(metrics.DB_POOL_USAGE), series_name(metrics.DB_POOL_WAITING),
              series_name(metrics.EVENT_LOOP_LAG)}
    for family in text_string_to_metric_families(page):
        if family.name in wanted:
            values = [sample.value for sample in family.samples]
            if values:
                facts.gauges[family.name] = max(values)
    return facts


async def _database(settings: Settings, db: DatabaseFacts, tasks: TaskFacts) -> None:
    """Fill ``db`` and ``tasks`` as the answers come (a timeout keeps what was learned)."""
    small = replace(settings.database, pool_min=1, pool_max=2, pool_timeout_s=3.0)
    try:
        pool = await open_pool(small, name="orchestrator doctor")
    except Exception as exc:
        db.error = one_line(exc)
        return
    try:
        db.reachable = True
        rounds = []
        for _ in range(3):
            started = time.perf_counter()
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
            rounds.append(time.perf_counter() - started)
        db.latency_s = statistics.median(rounds)
        server = ServerStats(pool)
        db.connections = await server.connections()
        db.long_transactions = await server.long_transactions(LONG_TRANSACTION_S)
        db.lock_waits = await server.lock_waits()
        if database_is_local(settings.database.url):
            db.data_directory = await server.data_directory()
        stats, registry = TaskStats(pool), WorkerRegistry(pool)
        for (agent, status), count in (await stats.by_status()).items():
            tasks.by_status.setdefault(agent, {})[status] = count
        tasks.oldest_waiting_s = await stats.oldest_due_age()
        tasks.running_past_timeout = await stats.running_past_timeout()
        tasks.outbox_unpublished, tasks.outbox_oldest_s = await OutboxStore(
            pool, "doctor").backlog()
        tasks.recent = await stats.recent_events(RECENT_WINDOW_S)
        tasks.integrity_failures = await stats.integrity_failures(RECENT_WINDOW_S)
        tasks.live_workers = await registry.live(settings.worker.heartbeat_ttl_s)
        tasks.deployed = sorted({*await registry.deployed_types(),
                                 *settings.worker.deployed_agents})
        tasks.known = True
    except psycopg.errors.UndefinedTable:
        tasks.error = (f"database {small.url.rsplit('/', 1)[-1]} has no orchestrator tables"
                       " (not migrated yet: orchestrator migrate, or start the API)")
    except Exception as exc:
        tasks.error = one_line(exc)
    finally:
        await pool.close()


async def _broker(settings: Settings, agents: list[str]) -> BrokerFacts:
    facts = BrokerFacts()
    try:
        connection = await aio_pika.connect(settings.broker.urls[0], timeout=HTTP_TIMEOUT_S,
                                            client_properties={"connection_name": "doctor"})
    except Exception as exc:
        where = _host(settings.broker.urls[0])
        facts.error = f"RabbitMQ at {where}: {one_line(exc) or 'no answer'}"
        return facts
    facts.reachable = True
    try:
        queues = [*(q for agent in agents for q in names.agent_queues(agent)),
                  names.DEAD_LETTER_QUEUE]
        for queue_name, depth in (await queue_depths(connection, queues)).items():
            facts.queues[queue_name] = QueueFacts(depth.ready, depth.consumers)
    finally:
        await connection.close()
    return facts


async def _redis(settings: Settings) -> RedisFacts:
    facts = RedisFacts()
    started = time.perf_counter()
    try:
        await _bounded("Redis", reach_redis(settings.redis), HTTP_TIMEOUT_S)
    except TimeoutError:
        facts.error = (f"Redis at {_host(settings.redis.url, 6379)} took the connection but did"
                       f" not answer PING within {HTTP_TIMEOUT_S:g}s: hung (a long command such"
                       " as DEBUG SLEEP or KEYS *, or a host that swaps)")
        return facts
    except Exception as exc:
        facts.error = one_line(exc)
        return facts
    facts.reachable, facts.latency_s = True, time.perf_counter() - started
    return facts


async def _monitoring(settings: Settings) -> MonitoringFacts:
    where = monitoring(settings)
    facts = MonitoringFacts(prometheus_url=where.prometheus, alertmanager_url=where.alertmanager,
                            expected=where.expected)
    prometheus, alertmanager = where.prometheus, where.alertmanager
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
        try:
            answer = (await client.get(f"{prometheus}/api/v1/targets",
                                       params={"state": "active"})).json()
            facts.prometheus_up = True
            facts.targets_down = sorted(
                f"{t['labels'].get('job', '?')} {t['labels'].get('instance', '?')}"
                for t in answer["data"]["activeTargets"] if t.get("health") == "down")
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        try:
            alerts = (await client.get(f"{alertmanager}/api/v2/alerts",
                                       params={"active": "true", "silenced": "false",
                                               "inhibited": "false"})).json()
            facts.alertmanager_up = True
            facts.firing = sorted(
                ({"alert": a["labels"].get("alertname", "?"),
                  "severity": a["labels"].get("severity", ""),
                  "since": a.get("startsAt", ""), "labels": a["labels"]} for a in alerts),
                key=lambda a: (a["since"], a["alert"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
    return facts


def _processes(settings: Settings) -> list[ProcessFacts]:
    record = load_record(settings.stack_dir)
    if record is None:
        return []
    return [ProcessFacts(entry.name, entry.pid, alive(entry.pid), resident_bytes(entry.pid),
                         open_fds(entry.pid), max_fds(entry.pid))
            for entry in record.processes]


def max_fds(pid: int) -> int | None:
    """The process's soft limit on open files (``/proc/PID/limits``)."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, IndexError, ValueError):
        return None
    return None


def _disks(settings: Settings, data_directory: str | None) -> dict[str, Usage]:
    volumes = {"state": settings.state_dir, **parse_volumes(settings.telemetry.disk_volumes)}
    if data_directory:
        volumes["database"] = data_directory
    return {name: found for name, path in volumes.items() if (found := usage(path))}


def _host(url: str, default_port: int = 5672) -> str:
    parts = httpx.URL(url)
    return f"{parts.host}:{parts.port or default_port}"


async def gather(settings: Settings, timeout_s: float = SOURCE_TIMEOUT_S) -> Facts:
    """Every fact, gathered concurrently; a source that fails or hangs leaves its error, and
    the whole run takes at most about ``timeout_s``."""
    started = time.perf_counter()
    for library in ("psycopg.pool", "aio_pika", "aiormq"):  # their errors are facts here
        logging.getLogger(library).setLevel(logging.CRITICAL)

    async def database() -> tuple[DatabaseFacts, TaskFacts]:
        db, tasks = DatabaseFacts(), TaskFacts()
        try:
            await _bounded("PostgreSQL", _database(settings, db, tasks), timeout_s)
        except TimeoutError as exc:
            if db.reachable:  # it answered, then a query waited (a lock, a saturated server)
                tasks.error = (f"the task tables did not answer within {timeout_s:g}s (locked,"
                               " or the server is saturated)")
            else:
                db.error = str(exc)
        return db, tasks

    database_task = asyncio.create_task(database())

    async def broker() -> BrokerFacts:
        # the queues to read are the agent types the database knows, if it tells in time
        done, _ = await asyncio.wait({database_task}, timeout=timeout_s / 2)
        agents = set(settings.worker.deployed_agents)
        if done:
            tasks = database_task.result()[1]
            agents |= {*tasks.by_status, *tasks.deployed}
        try:
            return await _bounded("RabbitMQ", _broker(settings, sorted(agents)), timeout_s / 2)
        except TimeoutError as exc:
            return BrokerFacts(error=str(exc))

    async def api() -> ApiFacts:
        try:
            return await _bounded("the API", _api(settings), timeout_s)
        except TimeoutError as exc:
            return ApiFacts(error=str(exc))

    async def monitoring() -> MonitoringFacts:
        try:
            return await _bounded("Prometheus and Alertmanager", _monitoring(settings),
                                  timeout_s)
        except TimeoutError:
            return MonitoringFacts()

    api_facts, broker_facts, redis_facts, monitoring_facts = await asyncio.gather(
        api(), broker(), _redis(settings), monitoring())
    db_facts, tasks = await database_task
    facts = Facts(api_facts, db_facts, tasks, broker_facts, redis_facts, monitoring_facts,
                  _processes(settings), _disks(settings, db_facts.data_directory))
    facts.seconds = time.perf_counter() - started
    return facts
