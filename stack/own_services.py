"""PostgreSQL, Redis and RabbitMQ instances of the stack's own, for `orchestrator stack up` on a
machine where they are installed but not running: data in the stack's state directory, the
default port unless something holds it, and stopped again by `orchestrator stack down`.

(`python -m stack.services`, for CI, starts the system's own instances instead.)
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from service.ports import free_port, port_for
from stack.services import answers


@dataclass(frozen=True)
class OwnInstance:
    """A started instance: where it listens and the command that stops it."""

    name: str
    port: int
    url: str
    stop: list[str]
    env: dict[str, str]
    """More ``ORCH_*`` settings for the orchestrator's processes (beside the URL)."""


def _as_user(user: str, command: list[str]) -> list[str]:
    """Run as ``user`` when we are root (PostgreSQL refuses to run as root)."""
    return ["runuser", "-u", user, "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str], what: str, env: dict[str, str] | None = None,
         timeout_s: float = 120) -> None:
    """Run a start/stop step; a failure says which step, with the tool's own words."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, **(env or {})}, check=False)
    if done.returncode != 0:
        output = " ".join((done.stderr or done.stdout).split())[-400:]
        raise RuntimeError(f"{what} failed: {output}")


def _own_dir(path: Path, user: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(path, user, user)


def start_postgres(state: Path, port: int) -> OwnInstance:
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        raise FileNotFoundError("PostgreSQL binaries (apt-get install -y postgresql)")
    home = state / "postgres"
    _own_dir(home, "postgres")
    data = home / "data"
    if not (data / "PG_VERSION").exists():
        _run(_as_user("postgres", [f"{bins[-1]}/initdb", "-D", str(data), "-U", "postgres",
                                   "--auth=trust", "-E", "UTF8"]),
             f"initdb in {data} (the postgres user must be able to reach it)")
    ctl = f"{bins[-1]}/pg_ctl"
    _run(_as_user("postgres", [ctl, "-D", str(data), "-l", str(home / "postgres.log"), "-w",
                               "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1",
                               "start"]), "starting PostgreSQL")
    return OwnInstance("PostgreSQL", port, f"postgresql://postgres@127.0.0.1:{port}/orchestrator",
                       _as_user("postgres", [ctl, "-D", str(data), "-m", "fast", "-w", "stop"]),
                       {})


def start_redis(state: Path, port: int, *, debug: bool = False) -> OwnInstance:
    """``debug``: allow ``DEBUG`` from loopback (drills hang it with ``DEBUG SLEEP``)."""
    home = state / "redis"
    home.mkdir(parents=True, exist_ok=True)
    _run(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(home),
          "--daemonize", "yes", "--pidfile", str(home / "redis.pid"), "--logfile",
          str(home / "redis.log"), "--save", "", "--appendonly", "no",
          *(["--enable-debug-command", "local"] if debug else [])], "starting Redis")
    return OwnInstance("Redis", port, f"redis://127.0.0.1:{port}/0",
                       ["redis-cli", "-p", str(port), "shutdown", "nosave"], {})


def start_rabbitmq(state: Path, port: int) -> OwnInstance:
    home = state / "rabbitmq"
    _own_dir(home, "rabbitmq")
    (home / "enabled_plugins").write_text("[rabbitmq_prometheus].\n" if port_for(15692) == 15692
                                          else "[].\n")
    (home / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{port}\n")
    node = f"orchestrator{port}@localhost"
    env = {"RABBITMQ_NODENAME": node, "RABBITMQ_NODE_PORT": str(port),
           "RABBITMQ_DIST_PORT": str(port_for(port + 20000) if port + 20000 < 65536
                                     else free_port()),
           "RABBITMQ_MNESIA_BASE": str(home / "mnesia"), "RABBITMQ_LOG_BASE": str(home / "log"),
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
           "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf")}
    if os.geteuid() == 0:
        for path in home.iterdir():
            shutil.chown(path, "rabbitmq", "rabbitmq")
    _run(["rabbitmq-server", "-detached"], "starting RabbitMQ", env)
    return OwnInstance("RabbitMQ", port, f"amqp://guest:guest@127.0.0.1:{port}/",
                       ["rabbitmqctl", "-q", "-n", node, "stop"], {"ORCH_RABBITMQ_NODE": node})


STARTERS: dict[str, tuple[int, str, str, Callable[[Path, int], OwnInstance]]] = {
    # name: (default port, binary, setting it overrides, starter)
    "PostgreSQL": (5432, "pg_ctlcluster", "ORCH_DATABASE_URL", start_postgres),
    "Redis": (6379, "redis-server", "ORCH_REDIS_URL", start_redis),
    "RabbitMQ": (5672, "rabbitmq-server", "ORCH_AMQP_URL", start_rabbitmq),
}


def ensure_own(state: Path) -> tuple[dict[str, str], list[str]]:
    """Start an own instance of each service that does not answer on its default port.

    Returns the ``ORCH_*`` URL overrides for the orchestrator's processes and the problems
    (a service neither running nor installed). Started instances are recorded for ``stop_own``.
    """
    overrides: dict[str, str] = {}
    problems: list[str] = []
    started: list[OwnInstance] = []
    record = state / "own-services.json"
    for name, (default, binary, setting, start) in STARTERS.items():
        if answers(default):
            continue
        if shutil.which(binary) is None:
            package = "postgresql" if name == "PostgreSQL" else binary
            problems.append(f"{name} is neither running nor installed; install it with:"
                            f" sudo apt-get install -y {package}")
            continue
        try:
            instance = start(state, port_for(default))
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            problems.append(f"{name} could not be started: {exc}")
            continue
        started.append(instance)
        record.write_text(json.dumps([asdict(i) for i in started]))  # stop_own finds it
        deadline = time.monotonic() + 90
        while not answers(instance.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not answers(instance.port):
            problems.append(f"{name} did not answer on 127.0.0.1:{instance.port}; see"
                            f" {state / name.lower()}")
            continue
        overrides[setting] = instance.url
        overrides.update(instance.env)
        print(f"started {name} (own data in {state}) on 127.0.0.1:{instance.port}", flush=True)
    return overrides, problems


def recorded(state: Path) -> list[OwnInstance]:
    """The instances ``ensure_own`` started that are recorded in ``state``."""
    try:
        return [OwnInstance(**entry)
                for entry in json.loads((state / "own-services.json").read_text())]
    except (OSError, ValueError, TypeError):
        return []


def stop_own(state: Path) -> list[str]:
    """Stop the instances ``ensure_own`` started; return their names."""
    record = state / "own-services.json"
    if not record.exists():
        return []
    stopped = []
    for entry in json.loads(record.read_text()):
        subprocess.run(entry["stop"], capture_output=True, timeout=120, check=False)
        stopped.append(f"{entry['name']} (port {entry['port']})")
    record.unlink()
    return stopped
