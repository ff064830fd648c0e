"""Settings: the one module that reads the environment (prefix ``ORCH_``).

Everything else receives a :class:`Settings` object; nothing reads ``os.environ`` on its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from typing import Any, get_type_hints

PREFIX = "ORCH_"


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
    agents: tuple[str, ...] = ()
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
    state_dir: str = ".orchestrator"
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
        return cls(**values, extra=extra)

    @property
    def base_url(self) -> str:
        """Where the CLI finds the API (``ORCH_API_URL``, else host and port)."""
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

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
