"""Settings: the one module that reads the environment (prefix ``ORCH_``).

Everything else receives a :class:`Settings` object; nothing reads ``os.environ`` on its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

PREFIX = "ORCH_"
CHECKOUT_ROOT = Path(__file__).resolve().parent.parent
"""The project checkout this code runs from (with ``pip install -e``), if it is one."""
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def default_state_dir(environ: Mapping[str, str]) -> str:
    """Where state lives when ``ORCH_STATE_DIR`` is not set: ``.orchestrator`` in the checkout
    the code runs from, else ``$XDG_STATE_HOME/orchestrator`` (``~/.local/state/orchestrator``).
    Always absolute, so every later command finds it from any working folder."""
    if (CHECKOUT_ROOT / "pyproject.toml").is_file() and (CHECKOUT_ROOT / "service").is_dir():
        return str(CHECKOUT_ROOT / ".orchestrator")
    base = environ.get("XDG_STATE_HOME") or str(Path(environ.get("HOME") or Path.home())
                                                 / ".local" / "state")
    return str(Path(base).expanduser().absolute() / "orchestrator")


def _local_host(host: str) -> str:
    """The address to reach a server listening on ``host`` from this machine."""
    return "127.0.0.1" if host in WILDCARD_HOSTS else host


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; each field maps to ``ORCH_<FIELD_NAME_UPPER>``."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/orchestrator"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "orch:"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = 1
    api_url: str = ""
    """Where the CLI finds the API (default: from the API host and port)."""
    public_url: str = ""
    """Where people reach the API, and so the runbook at ``/runbook``: the base of every
    alert's runbook link (default: the API host and port)."""
    grafana_url: str = "http://127.0.0.1:3000"
    """The base of every alert's dashboard link."""
    instance_id: str = ""
    """Set by the process that starts an API server; the server reports it in its health
    answers, so the starter knows the server answering is the one it started."""
    api_key: str = ""
    db_pool_min: int = 2
    db_pool_max: int = 20
    db_pool_timeout_s: float = 5.0
    prefetch: int = 32
    concurrency: int = 16
    delivery_limit: int = 5
    retry_max_attempts: int = 3
    retry_base_delay_s: float = 1.0
    retry_max_delay_s: float = 300.0
    retry_jitter: float = 0.2
    task_timeout_s: float = 300.0
    max_task_timeout_s: float = 86400.0
    max_body_bytes: int = 1_048_576
    heartbeat_interval_s: float = 5.0
    heartbeat_ttl_s: float = 15.0
    shutdown_grace_s: float = 30.0
    relay_poll_interval_s: float = 1.0
    relay_batch_size: int = 200
    status_cache_ttl_s: int = 3600
    status_cache_active_ttl_s: int = 10
    log_level: str = "INFO"
    log_format: str = "json"
    log_file: str = ""
    """Also write JSON log lines to this file (``stack up`` gives each process one)."""
    agents: tuple[str, ...] = ()
    deployed_agents: tuple[str, ...] = ()
    """Agent types that must have a live worker (they page when none runs) even before one has
    been seen; a type also counts as deployed once a worker for it has started."""
    agent_modules: tuple[str, ...] = ("agents.builtin",)
    llm_base_url: str = "http://127.0.0.1:11434/v1"
    llm_api_key: str = ""
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 60.0
    dev_api_key: str = ""
    metrics_enabled: bool = True
    metrics_host: str = "127.0.0.1"
    agent_metrics_port: int = 9101
    metrics_dir: str = ""
    metrics_cache_s: float = 2.0
    probe_interval_s: float = 1.0
    tracing_enabled: bool = True
    otlp_endpoint: str = ""
    trace_console: bool = False
    trace_sample_ratio: float = 1.0
    """Share of traces recorded when spans are exported (new traces; children follow)."""
    environment: str = "local"
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    page_inbox_port: int = 9094
    pagerduty_routing_key: str = ""
    stack_scrape_interval: str = "5s"
    alert_for_override: str = ""
    """Drills only: replace every alert's ``for:`` in the native stack (e.g. ``10s``)."""
    alert_group_wait: str = "10s"
    alert_group_interval: str = "1m"
    rabbitmq_node: str = ""
    """The RabbitMQ node name for ``rabbitmqctl -n`` in runbook commands (empty: its default);
    set by ``stack up`` when it starts a RabbitMQ of its own."""
    state_dir: str = field(default_factory=lambda: default_state_dir(os.environ))
    """Absolute: a relative ``ORCH_STATE_DIR`` is taken from the folder it is read in."""
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``ORCH_*`` variables; unknown ``ORCH_*`` names go to ``extra``."""
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        known = set()
        for f in fields(cls):
            if f.name == "extra":
                continue
            key = PREFIX + f.name.upper()
            known.add(key)
            if key in env:
                values[f.name] = _parse(key, env[key], hints[f.name])
        extra = {k: v for k, v in env.items() if k.startswith(PREFIX) and k not in known}
        values["state_dir"] = (str(Path(values["state_dir"]).expanduser().absolute())
                               if values.get("state_dir") else default_state_dir(env))
        return cls(**values, extra=extra)

    @property
    def base_url(self) -> str:
        """Where the CLI finds the API (``ORCH_API_URL``, else host and port)."""
        return (self.api_url.rstrip("/")
                or f"http://{_local_host(self.api_host)}:{self.api_port}")

    @property
    def public_base_url(self) -> str:
        """Where people reach the API (``ORCH_PUBLIC_URL``, else host and port)."""
        return (self.public_url.rstrip("/")
                or f"http://{_local_host(self.api_host)}:{self.api_port}")

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def dev_key_file(self) -> Path:
        """The development key ``up`` creates; the CLI uses it when ``ORCH_API_KEY`` is unset."""
        return self.state_path / "dev-api-key"

    @property
    def stack_dir(self) -> Path:
        """The native stack's folder: configs, data, logs, the pid record and the lock."""
        return self.state_path / "stack"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and the CLI use this)."""
        return replace(self, **changes)


class SettingsError(ValueError):
    """An ``ORCH_*`` variable holds a value of the wrong type."""


def _parse(key: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            return _parse_bool(key, raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind == tuple[str, ...]:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise SettingsError(f"{key}={raw!r}: expected {kind.__name__}") from exc
    return raw


def _parse_bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{key}={raw!r}: expected true or false")


@cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings.from_env()
