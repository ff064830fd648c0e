"""A throw-away deployment for benchmarks: API (and optionally an agent) on a database, vhost
and Redis prefix of their own, so a benchmark never mixes with a running orchestrator."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple
from urllib.parse import urlsplit

import psycopg

from service.api.readiness import wait_until_answers
from service.db.keys import KeySpec, provision_key
from service.db.pool import ensure_database
from service.scopes import DEFAULT_SCOPES
from service.settings import Settings

BENCH_NAME = "orchestrator_bench"
BENCH_KEY = KeySpec("bench", scopes=(*DEFAULT_SCOPES, "tasks:priority"), rate_limit="100000/s",
                    max_active_tasks=10_000_000)
"""Benchmarks measure the pipeline, not the tenant limits: the key's limits are far above (and
it may submit any priority)."""


def bench_settings(base: Settings | None = None, database: str = BENCH_NAME) -> Settings:
    """Settings pointing at the benchmark's own database, vhost and Redis prefix."""
    base = base or Settings.from_env()
    amqp_url = base.broker.urls[0]
    if shutil.which("rabbitmqctl"):
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", BENCH_NAME], capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", BENCH_NAME, "guest",
                        ".*", ".*", ".*"], capture_output=True, check=True)
        amqp_url = urlsplit(base.broker.urls[0])._replace(path=f"/{BENCH_NAME}").geturl()
    return base.with_overrides(
        database_url=base.database.url.rsplit("/", 1)[0] + f"/{database}",
        amqp_url=amqp_url, redis_prefix=f"{BENCH_NAME}:")


class Deployment(NamedTuple):
    url: str
    key: str
    database_url: str
    api_pid: int

    def api_cpu_s(self) -> float:
        """CPU time (user + system) the API has used so far, all its server processes."""
        return tree_cpu_s(self.api_pid)


def tree_cpu_s(root: int) -> float:
    """CPU seconds used by a process and its live descendants, all their threads.

    From the scheduler's nanosecond counters (``/proc/PID/task/TID/schedstat``), not from the
    10 ms ticks of ``/proc/PID/stat``: a sample of a cheap endpoint lasts only some ticks.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    total_ns, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total_ns += threads_run_ns(pid)
        todo.extend(children.get(pid, ()))
    return total_ns / 1e9


def threads_run_ns(pid: int) -> int:
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


@contextmanager
def own_deployment(base: Settings, port: int, *, agents: str | None = None,
                   extra_env: dict[str, str] | None = None, api_workers: int = 1,
                   drop_vhost: bool = True, agent_processes: int = 1,
                   database: str = BENCH_NAME, keep_tasks: bool = False) -> Iterator[Deployment]:
    """The API (plus ``agent_processes`` agent processes serving ``agents``) on resources of
    their own, the tasks of an earlier run deleted unless ``keep_tasks``.

    ``drop_vhost=False`` leaves the benchmark's vhost at exit, for deployments running side by
    side: only the one that exits last drops it.
    """
    settings = bench_settings(base, database)
    database_url = settings.database.url
    env = {**os.environ, "ORCH_DATABASE_URL": database_url, "ORCH_AMQP_URL": settings.broker.url,
           "ORCH_REDIS_PREFIX": f"{BENCH_NAME}:", "ORCH_API_PORT": str(port),
           "ORCH_LOG_LEVEL": "WARNING", "ORCH_AGENT_METRICS_PORT": "0", **(extra_env or {})}
    asyncio.run(ensure_database(settings.database))
    key = asyncio.run(provision_key(settings.database, BENCH_KEY))
    if not keep_tasks:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("TRUNCATE tasks CASCADE")
    command = [sys.executable, "-m", "orchestrator"]
    procs = [subprocess.Popen([*command, "api", "--workers", str(api_workers)], env=env)]
    for _ in range(agent_processes if agents else 0):
        procs.append(subprocess.Popen([*command, "agent", "--agents", agents or ""], env=env))
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_answers(url, gone=lambda: any(p.poll() is not None for p in procs)):
            raise RuntimeError("the API did not become ready")
        if agents:
            time.sleep(1.0)  # let the agent attach its consumer
        yield Deployment(url, key, database_url, procs[0].pid)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        if drop_vhost and shutil.which("rabbitmqctl"):  # drop what a run left in the queues
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", BENCH_NAME], capture_output=True)


