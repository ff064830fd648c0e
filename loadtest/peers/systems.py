"""The systems of the peer benchmark, each run for one round on the same no-op workload, on the
benchmark's own database, vhost and Redis database: tasks/s from the first submit until all are
done, and CPU microseconds per task by process group."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis

from loadtest import bench_pipeline, raw_ceiling
from loadtest.deployment import BENCH_NAME, bench_settings, own_deployment
from loadtest.peers import cpu
from service.ports import free_port
from service.settings import Settings

REDIS_DB = 11
"""The Redis database the peers' results and counters use (emptied before each round)."""
QUEUES = {"celery": "peers.celery", "dramatiq": "peers.dramatiq"}
"""Each peer's own queue (they declare theirs with different arguments)."""
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Round:
    system: str
    tasks: int
    rate: float
    cpu_us: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class System:
    name: str
    description: str
    run: Callable[[int], Round]


def run_orchestrator(tasks: int) -> Round:
    with own_deployment(Settings.from_env(), free_port(), agents="echo") as deployment:
        before = cpu.snapshot()
        result = asyncio.run(bench_pipeline.measure(deployment.url, deployment.key,
                                                    deployment.database_url, tasks, 32))
        after = cpu.snapshot()
    return Round("orchestrator", tasks, result.end_to_end_rate,
                 cpu.per_task_us(before, after, tasks))


def run_ceiling(tasks: int) -> Round:
    before = cpu.snapshot()
    rate = asyncio.run(raw_ceiling.measure(tasks))
    return Round("ceiling", tasks, rate, cpu.per_task_us(before, cpu.snapshot(), tasks))


def _redis_url(settings: Settings) -> str:
    return urlsplit(settings.redis.url)._replace(path=f"/{REDIS_DB}").geturl()


@contextmanager
def _peer_config(**values: str) -> Iterator[dict[str, str]]:
    """A folder holding the round's ``peers_config`` module, and the environment that finds
    it (the peers' apps import it)."""
    folder = tempfile.mkdtemp(prefix="peers-")
    Path(folder, "peers_config.py").write_text(
        "".join(f"{name} = {value!r}\n" for name, value in values.items()))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([folder, str(ROOT)])}
    try:
        yield env
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _children_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _consumers(vhost: str, queue: str) -> int:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "consumers"],
                         capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == queue and parts[1].isdigit():
            return int(parts[1])
    return 0


def _peer_round(name: str, tasks: int, config: dict[str, str], workers: list[list[str]],
                client: str, *client_args: str) -> Round:
    """Start the peer's workers, wait until they consume, produce and wait, stop them."""
    settings = bench_settings()
    redis.Redis.from_url(_redis_url(settings)).flushdb()
    with psycopg.connect(settings.database.url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS celery_taskmeta, celery_groupmeta")
    with _peer_config(**config) as env:
        procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for command in workers]
        try:
            deadline = time.monotonic() + 60
            while _consumers(BENCH_NAME, config["QUEUE"]) < len(workers):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"{name}: workers did not start consuming"
                                       f" {config['QUEUE']}")
                time.sleep(0.2)
            time.sleep(1.0)  # every pool thread or child up
            before, producer_before = cpu.snapshot(), _children_cpu_s()
            done = subprocess.run([sys.executable, "-m", "loadtest.peers.produce", client,
                                   str(tasks), *client_args], env=env, capture_output=True,
                                  text=True, timeout=900)
            after = cpu.snapshot()  # the producer has exited: its CPU is its rusage
            after["benchmark"] += _children_cpu_s() - producer_before
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1]) \
        if done.stdout.strip() else {"error": done.stderr[-2000:]}
    if "rate" not in answer:
        raise RuntimeError(f"{name}: {answer.get('error')}")
    return Round(name, tasks, float(answer["rate"]), cpu.per_task_us(before, after, tasks))


def _celery(pool: str, backend: str, processes: int, concurrency: int,
            sleep_s: float | None = None) -> Callable[[int], Round]:
    """A Celery round; with ``sleep_s`` its tasks sleep that long instead of doing nothing."""
    def run(tasks: int) -> Round:
        settings = bench_settings()
        database = settings.database.url.replace("postgresql://", "postgresql+psycopg://", 1)
        config = {"BROKER_URL": settings.broker.urls[0].replace("amqp://", "pyamqp://", 1),
                  "RESULT_BACKEND": f"db+{database}" if backend == "postgresql"
                  else _redis_url(settings),
                  "QUEUE": QUEUES["celery"], "DATABASE_URL": settings.database.url,
                  "REDIS_URL": _redis_url(settings), "DONE_KEY": "peers:done",
                  "DONE": "postgresql" if backend == "postgresql" else "redis-keys"}
        workers = [[sys.executable, "-m", "celery", "-A", "loadtest.peers.celery_app", "worker",
                    "--pool", pool, "--concurrency", str(concurrency), "-Q", QUEUES["celery"],
                    "--loglevel", "WARNING", "-n", f"peers{n}@%h", "--without-gossip",
                    "--without-mingle", "--without-heartbeat"] for n in range(processes)]
        return _peer_round(f"celery-{pool}", tasks, config, workers, "celery",
                           *([] if sleep_s is None else [str(sleep_s)]))
    return run


def _dramatiq(processes: int, threads: int) -> Callable[[int], Round]:
    def run(tasks: int) -> Round:
        settings = bench_settings()
        config = {"BROKER_URL": settings.broker.urls[0], "QUEUE": QUEUES["dramatiq"],
                  "REDIS_URL": _redis_url(settings), "DONE_KEY": "peers:done",
                  "DONE": "redis-counter", "DATABASE_URL": settings.database.url}
        workers = [[sys.executable, "-m", "dramatiq", "loadtest.peers.dramatiq_app",
                    "--processes", str(processes), "--threads", str(threads),
                    "--queues", QUEUES["dramatiq"]]]
        return _peer_round("dramatiq", tasks, config, workers, "dramatiq")
    return run


def celery_prefork_sleepers(tasks: int, sleep_s: float, processes: int = 2) -> Round:
    """Celery prefork with ``processes`` children on tasks that sleep ``sleep_s``."""
    return _celery("prefork", "postgresql", 1, processes, sleep_s)(tasks)


SYSTEMS = (
    System("orchestrator", "this project: HTTP submit -> PostgreSQL -> outbox -> RabbitMQ ->"
           " one agent process -> result (every guarantee and the telemetry on)",
           run_orchestrator),
    System("celery-threads", "Celery, 2 worker processes x 8 threads, RabbitMQ with confirms,"
           " Redis result backend (no durable task state)", _celery("threads", "redis", 2, 8)),
    System("celery-prefork", "Celery, prefork x 2, RabbitMQ with confirms, PostgreSQL result"
           " backend", _celery("prefork", "postgresql", 1, 2)),
    System("dramatiq", "Dramatiq, 2 processes x 8 threads, RabbitMQ with confirms (no DB"
           " writes; a Redis counter per task)", _dramatiq(2, 8)),
    System("ceiling", "the tight durable loop: batched insert, pipelined confirms, batched"
           " updates, ack after commit (loadtest.raw_ceiling)", run_ceiling),
)
