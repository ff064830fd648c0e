"""The native monitoring stack, for machines without Docker: Prometheus and Alertmanager from the
Debian packages and the local page inbox, on loopback ports, with state in one directory.

Everything is rendered from the same Python definitions as the committed files; only targets,
ports, paths and the deployment's links differ (and, for drills and tests, the timings passed in
``Timings``). Every path written into a config is absolute: Prometheus resolves a relative
``rule_files`` entry against the config file's own folder.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from alerts.alertmanager import alertmanager_config
from alerts.links import LOCAL, Deployment
from alerts.render import to_yaml
from alerts.rules import ALERTS_GROUP, rule_groups
from alerts.runbook import runbook_html
from service.ports import listening_pids
from service.procinfo import command_line
from stack.errors import StackError
from stack.page_inbox import CHAT_PATH, EVENTS_PATH
from stack.prometheus_config import Targets, prometheus_config
from stack.supervisor import Supervisor

INSTALL_HINT = ("sudo apt-get update && sudo apt-get install -y prometheus"
                " prometheus-alertmanager")
BINARIES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}
STARTED_HEADER = "written by `orchestrator stack up` from alerts/ and stack/ at every start"

RANGE = re.compile(r"\[\d+[smhd]\]")
"""A range selector of a PromQL expression."""


@dataclass(frozen=True)
class Timings:
    """Scrape/evaluation cadence and alert timings (drills shorten them)."""

    scrape_interval: str = "5s"
    rule_for: str | None = None
    """Replace every alert's ``for:`` (drills); ``None`` keeps the rules as rendered."""
    rule_window: str | None = None
    """Replace the range of every threshold alert's ``[5m]``-style selector (drills: a
    ``rate`` over 10 minutes would hold an alert 10 minutes after the fault is gone); the SLO
    burn-rate windows and the memory trend's window are kept."""
    group_wait: str = "10s"
    group_interval: str = "1m"


@dataclass(frozen=True)
class Ports:
    prometheus: int = 9090
    alertmanager: int = 9093
    page_inbox: int = 9094


@dataclass
class NativeStack:
    """Renders the configs into ``state_dir`` and runs the three processes under a supervisor
    (its own unless ``start`` is given one)."""

    state_dir: Path
    api_targets: list[str]
    agent_targets: list[str]
    rabbitmq_targets: list[str] = field(default_factory=list)
    ports: Ports = field(default_factory=Ports)
    timings: Timings = field(default_factory=Timings)
    routing_key: str = "0" * 32
    deployment: Deployment = LOCAL
    runbook_drills: tuple[tuple[str, str], ...] = ()
    """Alert -> the drill that proves it, for the runbook the inbox serves."""
    supervisor: Supervisor = field(default_factory=lambda: Supervisor(None, grace_s=10))
    ui_paths: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state_dir = self.state_dir.absolute()

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

    def rules(self) -> dict[str, Any]:
        rules = copy.deepcopy(rule_groups(self.deployment))
        for group in rules["groups"]:
            for rule in group["rules"]:
                if self.timings.rule_for is not None and "for" in rule:
                    rule["for"] = self.timings.rule_for
                if (self.timings.rule_window is not None and "alert" in rule
                        and group["name"] == ALERTS_GROUP
                        and "predict_linear" not in rule["expr"]):  # a trend needs its window
                    rule["expr"] = RANGE.sub(f"[{self.timings.rule_window}]", rule["expr"])
        return rules

    @property
    def runbook_file(self) -> Path:
        return self.state_dir / "runbook.html"

    def write_configs(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        _write_yaml(self.state_dir / "rules.yml", self.rules())
        self.runbook_file.write_text(runbook_html(STARTED_HEADER, self.deployment,
                                                  self.runbook_drills))
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
                           str(ports.page_inbox), "--store", str(self.pages_file),
                           "--runbook", str(self.runbook_file)],
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

    def start(self, supervisor: Supervisor | None = None, timeout_s: float = 30) -> None:
        """Start the page inbox, Alertmanager and Prometheus; wait until each answers (and is
        the process just started), and until Prometheus has loaded every rule."""
        missing = [b for b in BINARIES.values() if shutil.which(b) is None]
        if missing:
            raise StackError(f"{', '.join(missing)} not installed; install with: "
                             f"{INSTALL_HINT}")
        if supervisor is not None:
            self.supervisor = supervisor
        self.write_configs()
        ready = {"page-inbox": (self.page_inbox_url + "/health", self.ports.page_inbox),
                 "alertmanager": (self.alertmanager_url + "/-/ready", self.ports.alertmanager),
                 "prometheus": (self.prometheus_url + "/-/ready", self.ports.prometheus)}
        for name, command in self.commands().items():
            child = self.supervisor.spawn(name, command, log=self.state_dir / f"{name}.log")
            url, port = ready[name]
            self.supervisor.wait_until(functools.partial(_answers, url, port, child),
                                       timeout_s, f"{name} to answer at {url}")
        expected = sum(len(g["rules"]) for g in self.rules()["groups"])
        self.supervisor.wait_until(functools.partial(self._rules_loaded, expected), 10,
                                   "Prometheus to load its rules")
        self.ui_paths = {  # probe path -> the page to show
            "prometheus": _first_answering(self.prometheus_url, {"/alerts": "/alerts",
                                                                 "/classic/alerts":
                                                                     "/classic/alerts"}),
            "alertmanager": _first_answering(self.alertmanager_url,
                                             {"/script.js": "/#/alerts"})}

    def _rules_loaded(self, expected: int) -> bool:
        """All ``expected`` rules are loaded, else a ``StackError`` that says why."""
        try:
            groups = httpx.get(f"{self.prometheus_url}/api/v1/rules", timeout=2).json()[
                "data"]["groups"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        loaded = sum(len(g["rules"]) for g in groups)
        if loaded == expected:
            return True
        config = self.state_dir / "prometheus.yml"
        checked = subprocess.run(["promtool", "check", "config", str(config)],
                                 capture_output=True, text=True, check=False)
        raise StackError(f"Prometheus loaded {loaded} of {expected} rules from {config}:"
                         f" {' '.join((checked.stdout + checked.stderr).split())[-300:]}")

    def urls(self) -> dict[str, str]:
        return {"Prometheus": self.prometheus_url, "Alertmanager": self.alertmanager_url,
                "Page inbox": self.page_inbox_url}

    def shown_urls(self) -> dict[str, str]:
        """What the banner shows: the pages that answer here (Debian's Prometheus serves its
        UI under ``/classic``; Debian's Alertmanager has no web UI, only its API)."""
        am_ui = self.ui_paths.get("alertmanager")
        return {
            "Prometheus": self.prometheus_url + (self.ui_paths.get("prometheus") or "")
                          + "  (rules: /api/v1/rules)",
            "Alertmanager": self.alertmanager_url + (am_ui or "/api/v2/alerts") + (
                "" if am_ui else "  (this Alertmanager has no web UI: its API)"),
            "Page inbox": f"{self.page_inbox_url}/pages  (orchestrator stack pages)",
            "Grafana": "not run natively: docker compose -f stack/compose.yaml up"}

    def alertmanager_discovered(self) -> bool:
        """Prometheus sends alerts only once it has discovered the Alertmanager (~5 s)."""
        try:
            data = httpx.get(f"{self.prometheus_url}/api/v1/alertmanagers", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool(data.get("data", {}).get("activeAlertmanagers"))

    def stop(self) -> None:
        self.supervisor.stop()


def _answers(url: str, port: int, child: subprocess.Popen[bytes]) -> bool:
    """``url`` answers 200, from ``child`` (when this machine shows who listens)."""
    try:
        if httpx.get(url, timeout=1).status_code != 200:
            return False
    except httpx.HTTPError:
        return False
    holders = listening_pids(port)
    if holders and child.pid not in holders:
        other = min(holders)
        raise StackError(f"127.0.0.1:{port} is answered by pid {other} ({command_line(other)}),"
                         " not the process just started")
    return True


def _first_answering(base: str, pages: dict[str, str]) -> str | None:
    """The page of the first probe path that answers 200 (``None``: none does)."""
    for probe, page in pages.items():
        try:
            if httpx.get(base + probe, timeout=2).status_code == 200:
                return page
        except httpx.HTTPError:
            continue
    return None


def _write_yaml(path: Path, data: object) -> None:
    path.write_text(to_yaml(data, header=STARTED_HEADER))
