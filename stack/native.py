"""The native monitoring stack, for machines without Docker: Prometheus and Alertmanager from the
Debian packages and the local page inbox, on loopback ports, with state in one directory.

Everything is rendered from the same Python definitions as the committed files; only targets,
ports and paths differ (and, for drills and tests, the timings passed in ``Timings``).
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from alerts.alertmanager import alertmanager_config
from alerts.rules import rule_groups
from stack.page_inbox import CHAT_PATH, EVENTS_PATH
from stack.prometheus_config import Targets, prometheus_config

INSTALL_HINT = ("sudo apt-get update && sudo apt-get install -y prometheus"
                " prometheus-alertmanager")
BINARIES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}


class StackError(RuntimeError):
    """The stack cannot start; the message says what is missing and how to get it."""


@dataclass(frozen=True)
class Timings:
    """Scrape/evaluation cadence and alert timings (drills shorten them)."""

    scrape_interval: str = "5s"
    rule_for: str | None = None
    """Replace every alert's ``for:`` (drills); ``None`` keeps the rules as rendered."""
    group_wait: str = "10s"
    group_interval: str = "1m"


@dataclass(frozen=True)
class Ports:
    prometheus: int = 9090
    alertmanager: int = 9093
    page_inbox: int = 9094


@dataclass
class NativeStack:
    """Renders the configs into ``state_dir`` and runs the three processes."""

    state_dir: Path
    api_targets: list[str]
    agent_targets: list[str]
    rabbitmq_targets: list[str] = field(default_factory=list)
    ports: Ports = field(default_factory=Ports)
    timings: Timings = field(default_factory=Timings)
    routing_key: str = "0" * 32
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    @property
    def page_inbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.page_inbox}"

    @property
    def pages_file(self) -> Path:
        return self.state_dir / "pages.jsonl"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "pids"

    def rules(self) -> dict[str, Any]:
        rules = copy.deepcopy(rule_groups())
        if self.timings.rule_for is not None:
            for group in rules["groups"]:
                for rule in group["rules"]:
                    if "for" in rule:
                        rule["for"] = self.timings.rule_for
        return rules

    def write_configs(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _write_yaml(self.state_dir / "rules.yml", self.rules())
        key_file = self.state_dir / "pagerduty-routing-key"
        key_file.write_text(self.routing_key + "\n")
        key_file.chmod(0o600)
        _write_yaml(self.state_dir / "alertmanager.yml", alertmanager_config(
            pagerduty_url=self.page_inbox_url + EVENTS_PATH, routing_key_file=str(key_file),
            chat_webhook_url=self.page_inbox_url + CHAT_PATH,
            group_wait=self.timings.group_wait, group_interval=self.timings.group_interval))
        targets = Targets(api=self.api_targets, agents=self.agent_targets,
                          rabbitmq=self.rabbitmq_targets,
                          alertmanager=[f"127.0.0.1:{self.ports.alertmanager}"])
        _write_yaml(self.state_dir / "prometheus.yml", prometheus_config(
            targets, [str(self.state_dir / "rules.yml")],
            scrape_interval=self.timings.scrape_interval,
            evaluation_interval=self.timings.scrape_interval))

    def commands(self) -> dict[str, list[str]]:
        state, ports = self.state_dir, self.ports
        return {
            "page-inbox": [sys.executable, "-m", "stack.page_inbox", "--port",
                           str(ports.page_inbox), "--store", str(self.pages_file)],
            "alertmanager": [
                BINARIES["alertmanager"], f"--config.file={state / 'alertmanager.yml'}",
                f"--storage.path={state / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{ports.alertmanager}",
                "--cluster.listen-address=", f"--web.external-url={self.alertmanager_url}"],
            "prometheus": [
                BINARIES["prometheus"], f"--config.file={state / 'prometheus.yml'}",
                f"--storage.tsdb.path={state / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{ports.prometheus}", "--web.enable-lifecycle",
                f"--web.external-url={self.prometheus_url}", "--rules.alert.resend-delay=2s"],
        }

    def start(self, timeout_s: float = 30) -> None:
        """Start the page inbox, Alertmanager and Prometheus; wait until each answers."""
        missing = [b for b in BINARIES.values() if shutil.which(b) is None]
        if missing:
            raise StackError(f"{', '.join(missing)} not installed; install with: "
                             f"{INSTALL_HINT}")
        self.write_configs()
        ready_urls = {"page-inbox": self.page_inbox_url + "/health",
                      "alertmanager": self.alertmanager_url + "/-/ready",
                      "prometheus": self.prometheus_url + "/-/ready"}
        for name, command in self.commands().items():
            log = (self.state_dir / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(command, stdout=log,
                                                    stderr=subprocess.STDOUT)
            log.close()
            self._record_pids()
            _wait(functools.partial(self._answers, name, ready_urls[name]), timeout_s,
                  f"{name} did not start; see {self.state_dir / (name + '.log')}")

    def _answers(self, name: str, url: str) -> bool:
        if self.processes[name].poll() is not None:
            raise StackError(f"{name} exited; see {self.state_dir / (name + '.log')}")
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def alertmanager_discovered(self) -> bool:
        """Prometheus sends alerts only once it has discovered the Alertmanager (~5 s)."""
        try:
            data = httpx.get(f"{self.prometheus_url}/api/v1/alertmanagers", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool(data.get("data", {}).get("activeAlertmanagers"))

    def stop(self, timeout_s: float = 10) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout_s)
        self.processes.clear()
        self.pid_file.unlink(missing_ok=True)

    def _record_pids(self) -> None:
        self.pid_file.write_text("".join(f"{name} {p.pid}\n"
                                         for name, p in self.processes.items()))


def stop_recorded(state_dir: Path, timeout_s: float = 15) -> list[str]:
    """``stack down``: stop every process recorded in the pid file; return what was stopped."""
    pid_file = state_dir / "pids"
    if not pid_file.exists():
        return []
    stopped = []
    entries = [line.split() for line in pid_file.read_text().splitlines() if line.strip()]
    for name, pid in entries:
        if _alive(int(pid)):
            os.kill(int(pid), signal.SIGTERM)
            stopped.append(f"{name} ({pid})")
    deadline = time.monotonic() + timeout_s
    for _, pid in entries:
        while _alive(int(pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(int(pid)):
            os.kill(int(pid), signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return stopped


def recorded_status(state_dir: Path) -> list[tuple[str, int, bool]]:
    pid_file = state_dir / "pids"
    if not pid_file.exists():
        return []
    rows = [line.split() for line in pid_file.read_text().splitlines() if line.strip()]
    return [(name, int(pid), _alive(int(pid))) for name, pid in rows]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def _write_yaml(path: Path, data: object) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _wait(ready: Callable[[], bool], timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise StackError(message)
        time.sleep(0.1)
