"""Test infrastructure: isolated resources on the real services, and orchestrator processes.

Every environment gets its own PostgreSQL database, RabbitMQ vhost and Redis key prefix, and
removes them afterwards, so tests never touch each other's (or anybody's) data.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from operations.drills.harness import wait_until as poll_until
from service.api.readiness import LIVE, wait_until_answers
from service.ports import free_port
from service.settings import Settings

PG_ADMIN = os.environ.get("ORCH_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_HOST = os.environ.get("ORCH_TEST_AMQP_HOST", "127.0.0.1:5672")
REDIS_URL = os.environ.get("ORCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ORCHESTRATOR = [sys.executable, "-m", "orchestrator"]
"""The ``orchestrator`` command of this checkout, as a subprocess."""
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port",
               "6379", "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
               "--logfile", "/var/log/redis/ci.log"]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@dataclass
class Env:
    """One isolated set of resources and the ``ORCH_*`` variables that point at them."""

    name: str
    environ: dict[str, str]
    logs: Path
    processes: list[Proc] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.environ)

    def with_vars(self, **changes: str) -> dict[str, str]:
        return {**self.environ, **{f"ORCH_{k.upper()}": v for k, v in changes.items()}}


def create_env(logs: Path, **overrides: str) -> Env:
    name = f"orch_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    environ = {
        "ORCH_DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + f"/{name}",
        "ORCH_AMQP_URL": f"amqp://guest:guest@{AMQP_HOST}/{name}",
        "ORCH_REDIS_URL": REDIS_URL,
        "ORCH_REDIS_PREFIX": f"{name}:",
        "ORCH_RETRY_BASE_DELAY_S": "0.1",
        "ORCH_RETRY_MAX_DELAY_S": "1",
        "ORCH_HEARTBEAT_INTERVAL_S": "1",
        "ORCH_HEARTBEAT_TTL_S": "3",
        "ORCH_SHUTDOWN_GRACE_S": "10",
        "ORCH_LOG_LEVEL": "INFO",
        "ORCH_AGENT_METRICS_PORT": "0",
        "ORCH_PROBE_INTERVAL_S": "0.5",
        "ORCH_METRICS_CACHE_S": "0",
        "ORCH_RATE_LIMIT": "10000/s",  # the suite's own traffic; limits are tested with keys'
        "ORCH_RATE_LIMIT_BURST": "10000",
        "ORCH_STATE_DIR": str(logs / name / "state"),
        **{f"ORCH_{k.upper()}": v for k, v in overrides.items()},
    }
    (logs / name).mkdir(parents=True, exist_ok=True)
    return Env(name, environ, logs / name)


def destroy_env(env: Env) -> None:
    for proc in env.processes:
        proc.kill()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{env.name}" WITH (FORCE)')
    rabbitmqctl("delete_vhost", env.name)
    ensure_redis()
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{env.name}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


class Proc:
    """An ``orchestrator`` subprocess with its output in a log file."""

    def __init__(self, env: Env, args: list[str], environ: dict[str, str] | None = None,
                 launcher: tuple[str, ...] = ()) -> None:
        """``launcher`` runs the command (``ip netns exec NS``: on another host)."""
        self.log_path = env.logs / f"{args[0]}-{uuid.uuid4().hex[:6]}.log"
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, **(environ or env.environ)}
        self.popen = subprocess.Popen([*launcher, *ORCHESTRATOR, *args],
                                      stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
                                      start_new_session=True)  # its own group: see kill()
        env.processes.append(self)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def wait_for_output(self, text: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output():
            if self.popen.poll() is not None:
                raise RuntimeError(f"process exited ({self.popen.returncode}):\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not seen in:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def metrics_url(self) -> str:
        """The ``/metrics`` URL an agent process logged at start."""
        self.wait_for_output("agent metrics on ")
        found = re.search(r"agent metrics on (http://[\d.:]+/metrics)", self.output())
        assert found is not None
        return found.group(1)

    def terminate(self, timeout_s: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout_s)

    def kill(self) -> None:
        """Kill the process and everything it started (an API's server workers too)."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()


def start_api(env: Env, port: int | None = None, environ: dict[str, str] | None = None,
              workers: int = 1) -> str:
    """Start ``orchestrator api`` (``workers`` server processes); return its URL once it
    answers."""
    port = port or free_port()
    proc = Proc(env, ["api", "--port", str(port), "--workers", str(workers)], environ)
    url = f"http://127.0.0.1:{port}"
    if wait_until_answers(url, path=LIVE, timeout_s=30, gone=lambda: proc.popen.poll() is not None):
        return url
    raise RuntimeError(f"API did not start (exit code {proc.popen.poll()}):\n{proc.output()}")


def start_agent(env: Env, *args: str, environ: dict[str, str] | None = None) -> Proc:
    proc = Proc(env, ["agent", *args], environ)
    proc.wait_for_output("consuming")
    return proc


def create_key(env: Env, name: str | None = None, scopes: str = "tasks:write,tasks:read",
               *options: str, tenant: str = "test") -> str:
    """A new key (``orchestrator keys create``); the tests' keys share the tenant ``test``
    unless told otherwise."""
    out = subprocess.run([*ORCHESTRATOR, "keys", "create", name or f"test-{uuid.uuid4().hex[:8]}",
                          "--scopes", scopes, "--tenant", tenant, *options],
                         env={**os.environ, **env.environ},
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


@asynccontextmanager
async def api_client(env: Env, url: str,
                     scopes: str = "tasks:write,tasks:read") -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API at ``url`` with a new key of ``env``."""
    key = create_key(env, None, scopes)
    async with httpx.AsyncClient(base_url=url, timeout=15,
                                 headers={"Authorization": f"Bearer {key}"}) as client:
        yield client


def redis_answers() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_redis() -> None:
    """Start Redis again if a test stopped it."""
    if redis_answers():
        return
    subprocess.run(REDIS_START, check=True, timeout=30)
    deadline = time.monotonic() + 10
    while not redis_answers():
        if time.monotonic() > deadline:
            raise RuntimeError("Redis did not come back")
        time.sleep(0.1)


def stop_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    with contextlib.suppress(redis.ConnectionError):  # shutdown drops the connection
        client.shutdown(nosave=True)


def wait_until(predicate: Any, timeout_s: float = 20, interval_s: float = 0.05) -> Any:
    """The drills' poll, at the tests' pace."""
    return poll_until(predicate, timeout_s, "condition", interval_s)


async def deliver_again(env: Env, task_id: str, agent: str = "echo") -> None:
    """Publish a second message for a task, as a duplicate delivery would."""
    import aio_pika

    from catalog import names
    from service.broker.messages import TaskMessage, encode

    connection = await aio_pika.connect(env.settings.broker.url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(names.WORK_EXCHANGE)
        body = encode(TaskMessage(task_id, agent, 1))
        await exchange.publish(aio_pika.Message(body), routing_key=agent)


async def corrupt_input(env: Env, task_id: str) -> None:
    """Change a task's stored input behind the API's back (its checksum no longer matches)."""
    async with await psycopg.AsyncConnection.connect(env.settings.database.url,
                                                     autocommit=True) as conn:
        await conn.execute("UPDATE tasks SET input = '{\"seconds\": 9}' WHERE id = %s",
                           (task_id,))
