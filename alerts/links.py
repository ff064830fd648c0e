"""One deployment's addresses: where alerts link to, and where the runbook's commands point.

The committed files (rules, runbook, dashboards) are rendered for the local defaults
(``LOCAL``). The native stack renders the rules it runs, and the API its ``/runbook`` page, for
the deployment's own settings (``Deployment.from_settings``), so every link and command follows
``ORCH_PUBLIC_URL``, ``ORCH_GRAFANA_URL``, the ports and the service URLs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from alerts.model import Severity, Threshold, fill
from alerts.thresholds import THRESHOLDS
from catalog.panels import Panel
from service.settings import Settings, WorkerSettings

LOGS = Path("stack") / "logs"
"""Where ``stack up`` keeps each process's JSON log, under the state folder."""


@dataclass(frozen=True)
class Deployment:
    """The addresses a page's links and the runbook's commands are built from."""

    runbook_base: str
    grafana_url: str
    api_url: str
    prometheus_url: str
    agent_metrics_url: str
    database_url: str
    redis_url: str
    amqp_vhost: str
    rabbitmq_node: str
    logs_dir: str
    warnings_at: tuple[tuple[str, float], ...] = ()
    """Alert -> its warning level here, for the thresholds a setting moves."""

    @classmethod
    def from_settings(cls, s: Settings, *, logs_dir: str | None = None) -> Deployment:
        return cls(
            runbook_base=s.api.runbook_base_url, grafana_url=s.stack.grafana_url.rstrip("/"),
            api_url=s.api.base_url, prometheus_url=f"http://127.0.0.1:{s.stack.prometheus_port}",
            agent_metrics_url="http://127.0.0.1:"  # port 0 ("any") has no address: the default
                              f"{s.worker.metrics_port or WorkerSettings().metrics_port}",
            database_url=_without_password(s.database.url),
            redis_url=_without_password(s.redis.url),
            amqp_vhost=unquote(urlsplit(s.broker.urls[0]).path.lstrip("/")) or "/",
            rabbitmq_node=s.broker.node,
            logs_dir=logs_dir or str(s.state_path / LOGS),
            warnings_at=tuple((t.alert, _setting(s, t.warning_setting))
                              for t in THRESHOLDS if t.warning_setting))

    def levels(self, threshold: Threshold) -> list[tuple[Severity, float]]:
        """The threshold's levels at this deployment (a setting may move the warning)."""
        moved = dict(self.warnings_at).get(threshold.alert)
        return [(severity, moved if moved is not None and severity is Severity.WARNING
                 else value) for severity, value in threshold.levels()]

    def runbook_url(self, alert: str) -> str:
        return f"{self.runbook_base}#{anchor(alert)}"

    def dashboard_url(self, panel: Panel) -> str:
        return self.grafana_url + panel.path

    def command(self, template: str) -> str:
        """A runbook command with this deployment's addresses filled in."""
        node = f" -n {self.rabbitmq_node}" if self.rabbitmq_node else ""
        return fill(template, api=self.api_url, prometheus=self.prometheus_url,
                    agent_metrics=self.agent_metrics_url,
                    psql=f'psql "{self.database_url}"',
                    pg_isready=f'pg_isready -d "{self.database_url}"',
                    redis_cli=f"redis-cli -u {self.redis_url}",
                    rabbitmqctl=f"rabbitmqctl{node}",
                    rabbitmq_diagnostics=f"rabbitmq-diagnostics{node}",
                    vhost=self.amqp_vhost, logs=self.logs_dir)


def anchor(alert: str) -> str:
    """The runbook heading anchor of an alert (GitHub style: lower case)."""
    return alert.lower()


def _setting(settings: Settings, path: str) -> float:
    section, name = path.split(".")
    return float(getattr(getattr(settings, section), name))


def _without_password(url: str) -> str:
    """Commands printed in a runbook never carry a password (psql and redis-cli ask for it, or
    read PGPASSWORD / REDISCLI_AUTH)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}@" if parts.username else ""
    host = parts.hostname or ""
    netloc = f"{user}{host}:{parts.port}" if parts.port else f"{user}{host}"
    return parts._replace(netloc=netloc).geturl()


LOCAL = Deployment.from_settings(Settings.from_env({}),
                                 logs_dir=str(Path(".orchestrator") / LOGS))
"""The settings' defaults: what the committed files link to (no machine's absolute path)."""
