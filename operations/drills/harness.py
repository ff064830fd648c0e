"""A stack of the drills' own: PostgreSQL, Redis and RabbitMQ instances it starts (never the
machine's shared ones), PostgreSQL behind a proxy it can slow down, and the orchestrator with
Prometheus, Alertmanager and the page inbox brought up by ``orchestrator stack up`` on free
ports, with drill timings (every ``for:`` 10 s, threshold windows 30 s, scrape 1 s).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx

from alerts.links import anchor
from operations.drills.proxy import CuttableProxy
from service.ports import free_port
from service.settings import Settings
from stack.own_services import OwnInstance, start_postgres, start_rabbitmq, start_redis
from stack.page_inbox import Inbox
from stack.services import answers
from stack.supervisor import load_record

ORCHESTRATOR = [sys.executable, "-m", "orchestrator"]
DRILL_TIMINGS = {
    "ORCH_ALERT_FOR_OVERRIDE": "10s", "ORCH_ALERT_WINDOW_OVERRIDE": "30s",
    "ORCH_STACK_SCRAPE_INTERVAL": "1s", "ORCH_ALERT_GROUP_WAIT": "1s",
    "ORCH_ALERT_GROUP_INTERVAL": "5s", "ORCH_HEARTBEAT_INTERVAL_S": "0.5",
    "ORCH_HEARTBEAT_TTL_S": "2", "ORCH_SHUTDOWN_GRACE_S": "1", "ORCH_RECONCILE_INTERVAL_S": "1",
    "ORCH_RECONCILE_AFTER_S": "3", "ORCH_RETRY_BASE_DELAY_S": "0.5",
    "ORCH_RETRY_MAX_DELAY_S": "2", "ORCH_METRICS_CACHE_S": "0.5",
}
"""What the drills shorten (stated in every drill report); everything else is the default."""
DRILL_LIMITS = {"ORCH_RATE_LIMIT": "5000/s", "ORCH_RATE_LIMIT_BURST": "5000"}
"""A drill's own traffic (1,500 submits in a row, 30 clients listing) is not what it tests."""
DRILL_CAPACITY = {"ORCH_CONCURRENCY": "16", "ORCH_PREFETCH": "32"}
"""The drills' workloads are sized for agents of 16 slots (1,500 five-second tasks back up the
sleep queue; 300 one-second ones leave 100 ready to purge), not the default 100."""
SCRATCH_MIB = 64


def wait_until(predicate: Callable[[], Any], timeout_s: float = 20.0, what: str = "condition",
               interval_s: float = 0.25) -> Any:
    """Poll ``predicate`` until it returns something true (returned), or raise
    ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:g}s")
        time.sleep(interval_s)


BOOT_TIMEOUT_S = 180


@dataclass
class Services:
    """The drill stack's own PostgreSQL, Redis and RabbitMQ, each restartable."""

    home: Path
    ports: dict[str, int] = field(default_factory=dict)
    running: dict[str, OwnInstance] = field(default_factory=dict)

    STARTERS: ClassVar[dict[str, Callable[[Path, int], OwnInstance]]] = {
        "PostgreSQL": start_postgres,
        "Redis": lambda home, port: start_redis(home, port, debug=True),
        "RabbitMQ": start_rabbitmq}

    def start(self, name: str) -> OwnInstance:
        port = self.ports.setdefault(name, free_port())
        instance = self.STARTERS[name](self.home, port)
        self.running[name] = instance
        try:  # three stacks booting at once on two cores: RabbitMQ alone can take a minute
            wait_until(lambda: answers(port), BOOT_TIMEOUT_S, f"{name} on 127.0.0.1:{port}")
            if name == "RabbitMQ":  # answers on its port before it accepts logins
                wait_until(lambda: subprocess.run(
                    ["rabbitmqctl", "-q", "-n", instance.env["ORCH_RABBITMQ_NODE"],
                     "await_startup", "--timeout", "60"], capture_output=True,
                    timeout=75).returncode == 0, BOOT_TIMEOUT_S, "RabbitMQ to finish booting")
        except (TimeoutError, subprocess.TimeoutExpired) as exc:
            raise TimeoutError(f"{exc}; its log ends:\n{self.log_tail(name)}") from exc
        return instance

    def log_tail(self, name: str, lines: int = 20) -> str:
        """The last lines of the service's own log files (why it did not come up)."""
        folder = self.home / name.lower()
        logs = sorted(folder.rglob("*.log"), key=lambda p: p.stat().st_mtime)[-2:]
        return "\n".join(line for log in logs
                         for line in log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, name: str) -> None:
        instance = self.running.pop(name, None)
        if instance is not None:
            subprocess.run(instance.stop, capture_output=True, timeout=120, check=False)
            wait_until(lambda: not answers(instance.port), 30, f"{name} to stop")

    def kill_redis(self) -> None:
        """SIGKILL Redis (a hung one does not obey SHUTDOWN)."""
        pid_file = self.home / "redis" / "redis.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        self.running.pop("Redis", None)
        wait_until(lambda: not answers(self.ports["Redis"]), 30, "Redis to die")

    def stop_all(self) -> None:
        for name in list(self.running):
            with contextlib.suppress(Exception):
                self.stop(name)


class DrillStack:
    """Everything a drill needs, started by ``start`` and taken down by ``stop``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.services = Services(root / "services")
        self.proxy = CuttableProxy("127.0.0.1", 0)
        self.scratch = root / "scratch"
        self.scratch_mounted = False
        self.environ: dict[str, str] = {}
        self.extra: list[tuple[str, subprocess.Popen[bytes]]] = []
        """Processes drills started beside the stack's (name, process)."""
        self.stack: subprocess.Popen[bytes] | None = None
        self.extra_state: dict[str, Any] = {}
        self.closers: list[Callable[[], None]] = []
        """Run at ``stop`` (servers a drill started in this process)."""
        self.startup_s = 0.0

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> DrillStack:
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self.services.home.mkdir(parents=True, exist_ok=True)
        postgres = self.services.start("PostgreSQL")
        redis = self.services.start("Redis")
        rabbitmq = self.services.start("RabbitMQ")
        self.proxy.target = ("127.0.0.1", postgres.port)
        self.proxy.__enter__()
        self._mount_scratch()
        ports = {name: free_port() for name in ("API", "AGENT_METRICS", "PROMETHEUS",
                                                 "ALERTMANAGER", "PAGE_INBOX")}
        self.llm_port = free_port()
        self.environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ORCH_")},
            **DRILL_TIMINGS, **DRILL_LIMITS, **DRILL_CAPACITY,
            "ORCH_STATE_DIR": str(self.root / "state"),
            "ORCH_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{self.proxy.port}/orchestrator",
            "ORCH_REDIS_URL": redis.url, "ORCH_AMQP_URL": rabbitmq.url, **rabbitmq.env,
            "ORCH_API_PORT": str(ports["API"]),
            "ORCH_AGENT_METRICS_PORT": str(ports["AGENT_METRICS"]),
            "ORCH_PROMETHEUS_PORT": str(ports["PROMETHEUS"]),
            "ORCH_ALERTMANAGER_PORT": str(ports["ALERTMANAGER"]),
            "ORCH_PAGE_INBOX_PORT": str(ports["PAGE_INBOX"]),
            "ORCH_AGENT_MODULES": "agents.builtin,operations.drills.agents",
            "ORCH_LLM_BASE_URL": f"http://127.0.0.1:{self.llm_port}/v1",
            "ORCH_LLM_API_KEY": "drill",
            "ORCH_LOG_FORMAT": "json",
        }
        if self.scratch_mounted:
            self.environ["ORCH_DISK_VOLUMES"] = f"scratch={self.scratch}"
        self.settings = Settings.from_env(self.environ)
        log = self.root / "stack-up.log"
        with log.open("wb") as out:
            stack = self.stack = subprocess.Popen(
                [*ORCHESTRATOR, "stack", "up"], env=self.environ, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: "orchestrator is up" in log.read_text() or stack.poll()
                   is not None, 180, "the drill stack to come up")
        if stack.poll() is not None:
            raise RuntimeError(f"orchestrator stack up exited: {log.read_text()[-2000:]}")
        wait_until(lambda: httpx.get(f"{self.prometheus}/api/v1/alertmanagers", timeout=5)
                   .json()["data"]["activeAlertmanagers"], 30, "Prometheus to find Alertmanager")
        wait_until(self._every_target_scraped, 60, "Prometheus to scrape every target")
        self.key = self.settings.dev_key_file.read_text().strip()
        self.startup_s = time.monotonic() - started
        return self

    def _every_target_scraped(self) -> bool:
        """Every target answered a scrape: a counter's first sample is its baseline, so an
        event before it would show no increase."""
        targets = httpx.get(f"{self.prometheus}/api/v1/targets", timeout=5).json()
        active = targets["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def stop(self) -> None:
        for close in self.closers:
            with contextlib.suppress(Exception):
                close()
        for _, child in self.extra:
            if child.poll() is None:
                child.kill()
                child.wait(10)
        if self.stack is not None and self.stack.poll() is None:
            self.stack.send_signal(signal.SIGINT)
            try:
                self.stack.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.stack.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proxy.__exit__(None, None, None)
        self.services.stop_all()
        if self.scratch_mounted:
            subprocess.run(["umount", "-l", str(self.scratch)], capture_output=True, check=False)

    def _mount_scratch(self) -> None:
        """A small filesystem of the drill's own (tmpfs; needs root), for the disk drill."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or shutil.which("mount") is None:
            return
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SCRATCH_MIB}m", "tmpfs",
                               str(self.scratch)], capture_output=True, check=False)
        self.scratch_mounted = done.returncode == 0

    # --- addresses ----------------------------------------------------------------------------

    @property
    def api(self) -> str:
        return self.settings.api.base_url

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.settings.stack.prometheus_port}"

    @property
    def alertmanager(self) -> str:
        return f"http://127.0.0.1:{self.settings.stack.alertmanager_port}"

    @property
    def inbox(self) -> Inbox:
        return Inbox(self.settings.stack_dir / "pages.jsonl")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, timeout=15,
                            headers={"Authorization": f"Bearer {self.key}"})

    def processes(self) -> dict[str, int]:
        record = load_record(self.settings.stack_dir)
        return {entry.name: entry.pid for entry in record.processes} if record else {}

    def serving(self, role: str) -> int:
        """The pid of the process serving ``role`` (``api`` or ``agent``) now: the last one a
        drill started for it, else the stack's own."""
        live = [child.pid for name, child in self.extra
                if name.startswith(f"{role}-again") and child.poll() is None]
        return live[-1] if live else self.processes()["api" if role == "api" else "agent-1"]

    # --- acting on the system -------------------------------------------------------------------

    def submit(self, agent: str, payload: Any = None, count: int = 1,
               **fields: Any) -> list[str]:
        ids = []
        with self.client() as client:
            for _ in range(count):
                answer = client.post("/v1/tasks", json={"agent": agent, "input": payload,
                                                        **fields})
                answer.raise_for_status()
                ids.append(answer.json()["id"])
        return ids

    def task(self, task_id: str) -> dict[str, Any]:
        with self.client() as client:
            return dict(client.get(f"/v1/tasks/{task_id}").json())

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start an orchestrator process beside the stack's (a replacement the operator
        starts), logging next to the stack's own."""
        logs = self.settings.stack_dir / "logs"
        environ = {**self.environ, "ORCH_LOG_FILE": str(logs / f"{name}.log")}
        with (logs / f"{name}.out").open("ab") as out:
            child = subprocess.Popen([*ORCHESTRATOR, *args], env=environ, stdout=out,
                                     stderr=subprocess.STDOUT)
        self.extra.append((name, child))
        return child

    def start_api(self) -> None:
        self.spawn("api-again", "api")
        wait_until(lambda: _ok(f"{self.api}/health/live"), 60, "the API to answer again")

    def start_agent(self, *args: str) -> subprocess.Popen[bytes]:
        child = self.spawn(f"agent-again-{len(self.extra)}", "agent", "--metrics-port",
                           str(self.settings.worker.metrics_port), *args)
        wait_until(lambda: _ok(f"http://127.0.0.1:{self.settings.worker.metrics_port}/metrics"),
                   60, "the new agent to serve its metrics")
        return child

    def psql(self, sql: str) -> str:
        done = subprocess.run(["psql", "-X", "-A", "-t", "-d", self.direct_database_url, "-c",
                               sql], capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip()

    @property
    def direct_database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.services.ports['PostgreSQL']}/orchestrator"

    def rabbitmqctl(self, *args: str) -> str:
        node = self.environ["ORCH_RABBITMQ_NODE"]
        done = subprocess.run(["rabbitmqctl", "-q", "-n", node, *args], capture_output=True,
                              text=True, timeout=60, check=True)
        return done.stdout

    def ready_messages(self, queue: str) -> int:
        """Messages the broker holds ready in ``queue`` (0 when it does not exist)."""
        for line in self.rabbitmqctl("list_queues", "--no-table-headers", "name",
                                     "messages_ready").splitlines():
            name, _, ready = line.rpartition("\t")
            if name == queue:
                return int(ready)
        return 0

    # --- what the monitoring says -----------------------------------------------------------------

    def firing(self) -> dict[str, str]:
        """Alerts Alertmanager would notify now (active, not inhibited or silenced):
        name -> severity."""
        try:
            alerts = httpx.get(f"{self.alertmanager}/api/v2/alerts",
                               params={"active": "true", "inhibited": "false",
                                       "silenced": "false"}, timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return {a["labels"]["alertname"]: a["labels"].get("severity", "") for a in alerts}

    def pending_or_firing(self) -> set[str]:
        """Alerts Prometheus evaluates as pending or firing."""
        try:
            alerts = httpx.get(f"{self.prometheus}/api/v1/alerts", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return set()
        return {a["labels"]["alertname"] for a in alerts["data"]["alerts"]}

    def notifications(self, since: float) -> list[Notification]:
        """Pages and chat messages received after ``since``, one per alert and action."""
        out: list[Notification] = []
        urls: dict[str, str] = {}  # a resolve carries only the trigger's dedup_key
        for entry in sorted(self.inbox.entries("pagerduty") + self.inbox.entries("chat"),
                            key=lambda e: e["received_at"]):
            event = entry["event"]
            if entry["kind"] == "pagerduty":
                details = (event.get("payload") or {}).get("custom_details") or {}
                key = str(event.get("dedup_key", ""))
                url = urls.setdefault(key, details.get("runbook_url", ""))
                action = "trigger" if event.get("event_action") == "trigger" else "resolve"
                found = [Notification(url.rsplit("#", 1)[-1], "page", action, url,
                                      entry["received_at"])]
            else:
                found = [Notification(
                    anchor(alert["labels"].get("alertname", "")), "chat",
                    "trigger" if alert.get("status") == "firing" else "resolve",
                    alert.get("annotations", {}).get("runbook_url", ""), entry["received_at"])
                    for alert in event.get("alerts", [])]
            out += [n for n in found if n.at >= since]
        return out


@dataclass(frozen=True)
class Notification:
    anchor: str
    """The alert's runbook anchor (its name, lower case)."""
    channel: str
    action: str
    runbook_url: str
    at: float


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def runbook_answers(url: str) -> bool:
    """The runbook link answers 200 and holds the section it points at."""
    try:
        page = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return False
    return page.status_code == 200 and f'id="{url.rsplit("#", 1)[-1]}"' in page.text

