"""PostgreSQL, Redis and RabbitMQ on loopback: check each, start the ones that are installed but
stopped, and say exactly what to install for the ones that are missing.

    python -m stack.services      # exit 0 when all three answer
"""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Service:
    name: str
    port: int
    binary: str
    package: str
    start: tuple[tuple[str, ...], ...]


def _postgres_start() -> tuple[tuple[str, ...], ...]:
    versions = sorted(Path(p).name for p in glob.glob("/etc/postgresql/*"))
    return (("pg_ctlcluster", "--skip-systemctl-redirect", versions[-1] if versions else "15",
             "main", "start"),)


SERVICES = (
    Service("PostgreSQL", 5432, "pg_ctlcluster", "postgresql", ()),
    Service("Redis", 6379, "redis-server", "redis-server",
            (("redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port",
              "6379", "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
              "--logfile", "/var/log/redis/ci.log"),)),
    Service("RabbitMQ", 5672, "rabbitmq-server", "rabbitmq-server",
            (("rabbitmq-server", "-detached"), ("rabbitmqctl", "-q", "await_startup"))),
)


def answers(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def ensure(service: Service, timeout_s: float = 120) -> str | None:
    """``None`` when the service answers (started if needed), else what to do about it."""
    if answers(service.port):
        return None
    if shutil.which(service.binary) is None:
        return (f"{service.name} is not installed; install it with:"
                f" sudo apt-get install -y {service.package}")
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    commands = _postgres_start() if service.name == "PostgreSQL" else service.start
    for command in commands:
        subprocess.run(command, check=False, capture_output=True, timeout=timeout_s)
    deadline = time.monotonic() + timeout_s
    while not answers(service.port):
        if time.monotonic() > deadline:
            return f"{service.name} did not start on 127.0.0.1:{service.port}"
        time.sleep(0.2)
    print(f"started {service.name} on 127.0.0.1:{service.port}", file=sys.stderr)
    return None


def enable_rabbitmq_metrics() -> bool:
    """Turn on RabbitMQ's own Prometheus endpoint (:15692) when it is off; True if it answers."""
    if answers(15692):
        return True
    if shutil.which("rabbitmq-plugins") is None:
        return False
    subprocess.run(["rabbitmq-plugins", "enable", "rabbitmq_prometheus"], capture_output=True,
                   timeout=60, check=False)
    deadline = time.monotonic() + 15
    while not answers(15692) and time.monotonic() < deadline:
        time.sleep(0.2)
    return answers(15692)


def ensure_all() -> list[str]:
    return [problem for service in SERVICES if (problem := ensure(service))]


def main() -> int:
    problems = ensure_all()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    for service in SERVICES:
        state = "up" if answers(service.port) else "DOWN"
        print(f"{service.name:<11} 127.0.0.1:{service.port}  {state}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
