"""Settings: the one module that reads the environment (prefix ``ORCH_``).

The settings are grouped per concern (database, broker, Redis, API, task defaults, worker, LLM,
telemetry, stack), and each part is handed only to what needs it (``open_pool`` gets
``settings.database``, ``Cache`` gets ``settings.redis``, ...). Every field names its variable:
``ORCH_DATABASE_URL`` is ``settings.database.url``. Nothing else reads ``os.environ``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, get_type_hints

PREFIX = "ORCH_"
CHECKOUT_ROOT = Path(__file__).resolve().parent.parent
"""The project checkout this code runs from (with ``pip install -e``), if it is one."""
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")


def var(name: str, default: Any, *, secret: bool = False) -> Any:
    """A settings field read from ``ORCH_<name>``; a ``secret`` one is masked in every ``repr``
    and ``str`` of the settings (a URL keeps all but its password), its value unchanged."""
    return field(default=default, metadata={"env": name, "secret": secret})


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = var("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/orchestrator",
                   secret=True)
    pool_min: int = var("DB_POOL_MIN", 2)
    pool_max: int = var("DB_POOL_MAX", 20)
    pool_timeout_s: float = var("DB_POOL_TIMEOUT_S", 5.0)
    idle_in_transaction_timeout_s: float = var("DB_IDLE_IN_TRANSACTION_TIMEOUT_S", 30.0)
    """PostgreSQL ends a session that sits this long inside a transaction, releasing its locks:
    a process cut off mid-transaction (a lost host, a partition) cannot hold the rows of its
    claims and outbox batches for the hours TCP takes to notice. 0 turns it off."""
    keepalive_idle_s: int = var("DB_KEEPALIVE_IDLE_S", 10)
    """TCP keepalives on every database connection: after this many idle seconds a probe every
    ``keepalive_idle_s / 2`` s, three unanswered ones end the connection, so the pool replaces
    it instead of waiting on a peer that is gone."""
    backup_dir: str = var("BACKUP_DIR", "")
    """Where ``orchestrator backup create`` writes dumps (default: ``backups`` in the state
    folder; a relative path is taken from the folder the command runs in)."""
    backup_max_age_s: float = var("BACKUP_MAX_AGE_S", 93600.0)
    """The newest verified backup may be this old (26 h: a daily backup with slack); older,
    ``orchestrator backup status --check`` exits 1. The committed BackupNotVerified alert uses
    the default."""


@dataclass(frozen=True)
class BrokerSettings:
    url: str = var("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", secret=True)
    """One broker, or the nodes of one cluster comma-separated (each process connects to the
    first that answers and moves to the next when it loses it)."""
    delivery_limit: int = var("DELIVERY_LIMIT", 5)
    quorum_group_size: int = var("QUORUM_GROUP_SIZE", 3)
    """Replicas of each quorum queue when it is created (``x-quorum-initial-group-size``; a
    cluster of fewer nodes has one per node). A queue that exists keeps its members."""
    node: str = var("RABBITMQ_NODE", "")
    """The RabbitMQ node name for ``rabbitmqctl -n`` in runbook commands (empty: its default);
    set by ``stack up`` when it starts a RabbitMQ of its own."""
    relay_poll_interval_s: float = var("RELAY_POLL_INTERVAL_S", 1.0)
    relay_batch_size: int = var("RELAY_BATCH_SIZE", 200)
    reconcile_interval_s: float = var("RECONCILE_INTERVAL_S", 15.0)
    reconcile_after_s: float = var("RECONCILE_AFTER_S", 60.0)
    """A waiting task is published again when its message is gone and it has waited this long."""

    @property
    def urls(self) -> list[str]:
        """The node URLs of ``ORCH_AMQP_URL``, in order."""
        return [part.strip() for part in self.url.split(",") if part.strip()]


@dataclass(frozen=True)
class RedisSettings:
    url: str = var("REDIS_URL", "redis://127.0.0.1:6379/0", secret=True)
    prefix: str = var("REDIS_PREFIX", "orch:")
    status_ttl_s: int = var("STATUS_CACHE_TTL_S", 3600)
    active_status_ttl_s: int = var("STATUS_CACHE_ACTIVE_TTL_S", 10)
    max_connections: int = var("REDIS_MAX_CONNECTIONS", 64)
    """The client's connection pool per process (redis-py's default of 2**31 is no bound;
    a call that finds every connection in use waits for one instead of failing the cache)."""
    stream_ttl_s: int = var("STREAM_TTL_S", 86400)
    """How long a task's stream of progress and output is kept after its last entry."""
    stream_max_entries: int = var("STREAM_MAX_ENTRIES", 10000)
    """Entries a task's stream keeps (about: older ones are trimmed)."""


@dataclass(frozen=True)
class ApiSettings:
    host: str = var("API_HOST", "127.0.0.1")
    port: int = var("API_PORT", 8000)
    workers: int = var("API_WORKERS", 1)
    url: str = var("API_URL", "")
    """Where the CLI finds the API (default: from the API host and port)."""
    public_url: str = var("PUBLIC_URL", "")
    """Where people reach the API, and so the runbook at ``/runbook``: the base of every
    alert's runbook link (default: the API host and port)."""
    runbook_url: str = var("RUNBOOK_URL", "")
    """Where the runbook is served: the base of every alert's runbook link (default: the API's
    ``/runbook`` at the public URL; ``stack up`` points it at its page inbox, which stays up
    when the API is down)."""
    instance_id: str = var("INSTANCE_ID", "")
    """Set by the process that starts an API server; the server reports it in its health
    answers, so the starter knows the server answering is the one it started."""
    key: str = var("API_KEY", "", secret=True)
    """The key the CLI sends."""
    dev_key: str = var("DEV_API_KEY", "", secret=True)
    max_body_bytes: int = var("MAX_BODY_BYTES", 1_048_576)
    max_header_bytes: int = var("MAX_HEADER_BYTES", 65_536)
    """The request line and headers together; more gets 431 and the connection closed."""
    header_timeout_s: float = var("HEADER_TIMEOUT_S", 10.0)
    """A request whose headers have not all arrived by then gets 408 and is closed."""
    max_connections: int = var("MAX_CONNECTIONS", 1000)
    """Concurrent connections per server process; beyond them new requests get 503."""
    max_json_depth: int = var("MAX_JSON_DEPTH", 64)
    """Deepest nesting of arrays and objects a request body may have (400 beyond), and an
    agent's result (its task fails, without retries, beyond)."""
    list_max_bytes: int = var("LIST_MAX_BYTES", 4_194_304)
    """Byte budget of one page of ``GET /v1/tasks`` with ``include``: the page ends early."""
    metrics_port: int = var("API_METRICS_PORT", 0)
    """Serve ``/metrics`` on this port of ``ORCH_METRICS_HOST`` instead of the API port (0:
    on the API port)."""
    key_cache_ttl_s: float = var("KEY_CACHE_TTL_S", 1.0)
    """How long a process trusts a key it looked up: a revoked key stops working by then."""

    @property
    def base_url(self) -> str:
        """Where the CLI finds the API (``ORCH_API_URL``, else host and port)."""
        return self.url.rstrip("/") or f"http://{_local_host(self.host)}:{self.port}"

    @property
    def public_base_url(self) -> str:
        """Where people reach the API (``ORCH_PUBLIC_URL``, else host and port)."""
        return self.public_url.rstrip("/") or f"http://{_local_host(self.host)}:{self.port}"

    def metrics_url(self, metrics_host: str) -> str:
        """Where the API's ``/metrics`` is: its own port when ``ORCH_API_METRICS_PORT`` is
        set (on ``metrics_host``), else the API's."""
        if self.metrics_port:
            return f"http://{_local_host(metrics_host)}:{self.metrics_port}/metrics"
        return f"{self.base_url}/metrics"

    @property
    def runbook_base_url(self) -> str:
        """The runbook page every alert links to (``ORCH_RUNBOOK_URL``, else the API's)."""
        return self.runbook_url.rstrip("/") or f"{self.public_base_url}/runbook"


@dataclass(frozen=True)
class TaskSettings:
    """Defaults of the tasks the API accepts and of the retry policy the workers apply."""

    timeout_s: float = var("TASK_TIMEOUT_S", 300.0)
    max_timeout_s: float = var("MAX_TASK_TIMEOUT_S", 86400.0)
    max_attempts: int = var("RETRY_MAX_ATTEMPTS", 3)
    retry_base_delay_s: float = var("RETRY_BASE_DELAY_S", 1.0)
    retry_max_delay_s: float = var("RETRY_MAX_DELAY_S", 300.0)
    retry_jitter: float = var("RETRY_JITTER", 0.2)
    idempotency_ttl_s: float = var("IDEMPOTENCY_TTL_S", 86400.0)
    """An idempotency key answers with its task for this long; later it starts a new task."""
    max_result_bytes: int = var("MAX_RESULT_BYTES", 1_048_576)
    max_stream_entry_bytes: int = var("STREAM_MAX_ENTRY_BYTES", 65_536)
    """Largest progress or output entry an agent may report (as JSON); a larger one fails the
    call that reports it."""
    """An agent result larger than this (as stored JSON) fails the task, without retries."""
    stuck_queued_s: float = var("STUCK_QUEUED_S", 60.0)
    """A due task waiting this long is stuck (``orchestrator tasks --stuck``): six times the
    queue-wait objective of 10 s."""
    retention_succeeded: str = var("RETENTION_SUCCEEDED", "14d")
    """How long a finished task is kept, by final status (``never``: for ever); older ones and
    their timelines are deleted by the API processes' retention job."""
    retention_cancelled: str = var("RETENTION_CANCELLED", "14d")
    retention_dead: str = var("RETENTION_DEAD", "30d")
    retention_interval_s: float = var("RETENTION_INTERVAL_S", 300.0)
    retention_batch: int = var("RETENTION_BATCH", 1000)
    """Tasks deleted per statement (each its own short transaction)."""
    count_fold_interval_s: float = var("COUNT_FOLD_INTERVAL_S", 2.0)
    """How often an API process folds the task count deltas (appended with every transition)
    into the counts the gauges read; one process folds at a time."""
    schedule_interval_s: float = var("SCHEDULE_INTERVAL_S", 1.0)
    """How often each API process looks for schedules that are due."""
    schedule_grace_s: float = var("SCHEDULE_GRACE_S", 60.0)
    """A schedule whose policy is ``skip`` still fires a due time this late (after a restart);
    later ones are skipped."""


@dataclass(frozen=True)
class LimitSettings:
    """What one tenant may do, per API key's tenant (a key may override its own)."""

    rate: str = var("RATE_LIMIT", "200/s")
    """Requests per tenant, ``N/s``, ``N/min`` or ``N/h`` (a token bucket in Redis)."""
    burst: int = var("RATE_LIMIT_BURST", 400)
    """Requests a tenant may send at once before the rate applies."""
    max_active_tasks: int = var("TENANT_MAX_ACTIVE_TASKS", 20_000)
    """Unfinished (queued, retrying, running) tasks per tenant; submits beyond get 429."""
    auth_failures: str = var("AUTH_FAILURE_LIMIT", "30/min")
    """Failed authentications per client address before 429."""
    max_priority: int = var("MAX_PRIORITY_WITHOUT_SCOPE", 5)
    """Priorities above this need the ``tasks:priority`` scope."""


@dataclass(frozen=True)
class WorkerSettings:
    prefetch: int = var("PREFETCH", 0)
    """Deliveries a worker holds per queue (each agent type's priority band is one queue);
    0: the agent type's concurrency, so any one band can fill its slots."""
    concurrency: str = var("CONCURRENCY", "100")
    """Tasks of one agent type a worker process runs at once, each type its own slots: a
    default and per-type numbers, ``100,summarize=4,llm=400`` (agents mostly wait on models)."""
    agent_limits: str = var("AGENT_LIMITS", "")
    """Flow limits per agent type, over what its ``@agent`` declares: ``NAME:rate=120/min,
    tokens=90000/min,concurrency=20,max_concurrency_per_key=2;OTHER:...`` (``none`` lifts one)."""
    priority_lower_share: float = var("PRIORITY_LOWER_SHARE", 0.1)
    """Of the slots freed while several priority bands wait, this share (0 to 0.5) goes to the
    longest-waiting task of a lower band, so lower bands still progress under urgent load."""
    heartbeat_interval_s: float = var("HEARTBEAT_INTERVAL_S", 5.0)
    heartbeat_ttl_s: float = var("HEARTBEAT_TTL_S", 15.0)
    shutdown_grace_s: float = var("SHUTDOWN_GRACE_S", 30.0)
    agents: tuple[str, ...] = var("AGENTS", ())
    """The agent types a worker serves when ``--agents`` is not given (default: all)."""
    agent_modules: tuple[str, ...] = var("AGENT_MODULES", ("agents.builtin",))
    deployed_agents: tuple[str, ...] = var("DEPLOYED_AGENTS", ())
    """Agent types that must have a live worker (they page when none runs) even before one has
    been seen; a type also counts as deployed once a worker for it has started."""
    metrics_port: int = var("AGENT_METRICS_PORT", 9101)


@dataclass(frozen=True)
class LlmSettings:
    base_url: str = var("LLM_BASE_URL", "http://127.0.0.1:11434/v1", secret=True)
    api_key: str = var("LLM_API_KEY", "", secret=True)
    model: str = var("LLM_MODEL", "gpt-4o-mini")
    timeout_s: float = var("LLM_TIMEOUT_S", 60.0)
    stream: bool = var("LLM_STREAM", True)
    """The ``llm`` agent asks for a streamed completion and passes each piece on to the task's
    stream as it comes (a task's ``"stream": false`` asks for the whole answer at once)."""
    prices: str = var("LLM_PRICES", "")
    """USD per million tokens in and out, per model: ``gpt-4o-mini=0.15/0.60,gpt-4o=2.5/10``
    (a model not listed costs 0, and says so in the worker's log once)."""
    daily_budget_usd: float = var("LLM_DAILY_BUDGET_USD", 50.0)
    """The model spend a day may cost: ModelSpendOverBudget warns when the spend rate, over a
    fast or a slow pair of windows, would run past it. The committed rules use the default."""


@dataclass(frozen=True)
class CallbackSettings:
    """Completion callbacks (``callback_url`` on submit), delivered by the API processes."""

    allow_private: bool = var("CALLBACK_ALLOW_PRIVATE", False)
    """Let callbacks call loopback, private and link-local addresses (off: SSRF)."""
    timeout_s: float = var("CALLBACK_TIMEOUT_S", 10.0)
    max_attempts: int = var("CALLBACK_MAX_ATTEMPTS", 12)
    """Deliveries tried before the callback is given up (``failed`` on the task)."""
    base_delay_s: float = var("CALLBACK_BASE_DELAY_S", 2.0)
    max_delay_s: float = var("CALLBACK_MAX_DELAY_S", 900.0)
    """The wait after a failed delivery doubles from the base up to this (with jitter)."""
    interval_s: float = var("CALLBACK_INTERVAL_S", 0.5)
    """How often each API process looks for due callbacks (a task ended by an agent is called
    back within about this long)."""
    secret_overlap_s: float = var("CALLBACK_SECRET_OVERLAP_S", 86400.0)
    """After a rotation the previous secret signs too this long."""


@dataclass(frozen=True)
class TelemetrySettings:
    log_level: str = var("LOG_LEVEL", "INFO")
    log_format: str = var("LOG_FORMAT", "json")
    log_file: str = var("LOG_FILE", "")
    """Also write JSON log lines to this file (``stack up`` gives each process one)."""
    metrics_enabled: bool = var("METRICS_ENABLED", True)
    metrics_host: str = var("METRICS_HOST", "127.0.0.1")
    metrics_dir: str = var("METRICS_DIR", "")
    metrics_cache_s: float = var("METRICS_CACHE_S", 2.0)
    probe_interval_s: float = var("PROBE_INTERVAL_S", 1.0)
    disk_volumes: tuple[str, ...] = var("DISK_VOLUMES", ())
    """More volumes to watch for free space, as ``name=path`` entries (the state folder and a
    local database's data folder are watched anyway)."""
    tracing_enabled: bool = var("TRACING_ENABLED", True)
    otlp_endpoint: str = var("OTLP_ENDPOINT", "", secret=True)
    trace_console: bool = var("TRACE_CONSOLE", False)
    trace_sample_ratio: float = var("TRACE_SAMPLE_RATIO", 1.0)
    """Share of traces recorded when spans are exported (new traces; children follow)."""
    environment: str = var("ENVIRONMENT", "local")


@dataclass(frozen=True)
class StackSettings:
    """The native monitoring stack (``stack up``) and the links of its alerts."""

    prometheus_port: int = var("PROMETHEUS_PORT", 9090)
    alertmanager_port: int = var("ALERTMANAGER_PORT", 9093)
    page_inbox_port: int = var("PAGE_INBOX_PORT", 9094)
    pagerduty_routing_key: str = var("PAGERDUTY_ROUTING_KEY", "", secret=True)
    scrape_interval: str = var("STACK_SCRAPE_INTERVAL", "5s")
    alert_for_override: str = var("ALERT_FOR_OVERRIDE", "")
    """Drills only: replace every alert's ``for:`` in the native stack (e.g. ``10s``)."""
    alert_window_override: str = var("ALERT_WINDOW_OVERRIDE", "")
    """Drills only: replace the range of the threshold alerts' selectors (e.g. ``30s``)."""
    alert_group_wait: str = var("ALERT_GROUP_WAIT", "10s")
    alert_group_interval: str = var("ALERT_GROUP_INTERVAL", "1m")
    grafana_url: str = var("GRAFANA_URL", "http://127.0.0.1:3000")
    """The base of every alert's dashboard link."""


SECTIONS: dict[str, type] = {
    "database": DatabaseSettings, "broker": BrokerSettings, "redis": RedisSettings,
    "api": ApiSettings, "tasks": TaskSettings, "limits": LimitSettings,
    "worker": WorkerSettings, "llm": LlmSettings, "callbacks": CallbackSettings,
    "telemetry": TelemetrySettings,
    "stack": StackSettings,
}


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
    """Runtime configuration, one section per concern."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    stack: StackSettings = field(default_factory=StackSettings)
    state_dir: str = field(default_factory=lambda: default_state_dir(os.environ))
    """``ORCH_STATE_DIR``, absolute: a relative value is taken from the folder it is read in."""
    extra: Mapping[str, str] = field(default_factory=dict, metadata={"secret": True})
    """``ORCH_*`` variables no setting reads (kept to be reported, never silently used)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``ORCH_*`` variables; unknown ``ORCH_*`` names go to ``extra``."""
        env = os.environ if environ is None else environ
        known = {PREFIX + "STATE_DIR"}
        sections: dict[str, Any] = {}
        for name, section in SECTIONS.items():
            hints = get_type_hints(section)
            values = {}
            for f in _variables(section):
                key = PREFIX + f.metadata["env"]
                known.add(key)
                if key in env:
                    values[f.name] = _parse(key, env[key], hints[f.name])
            sections[name] = section(**values)
        raw_state = env.get(PREFIX + "STATE_DIR")
        state_dir = (str(Path(raw_state).expanduser().absolute()) if raw_state
                     else default_state_dir(env))
        extra = {k: v for k, v in env.items() if k.startswith(PREFIX) and k not in known}
        return cls(**sections, state_dir=state_dir, extra=extra)

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def dev_key_file(self) -> Path:
        """The development key ``up`` creates; the CLI uses it when ``ORCH_API_KEY`` is unset."""
        return self.state_path / "dev-api-key"

    @property
    def operator_key(self) -> str:
        """The key the CLI and the doctor send: ``ORCH_API_KEY``, else the development key
        ``up`` made for this state folder (empty when there is neither)."""
        if self.api.key:
            return self.api.key
        try:
            return self.dev_key_file.read_text().strip()
        except OSError:
            return ""

    @property
    def backup_path(self) -> Path:
        """Where backups go: ``ORCH_BACKUP_DIR``, else ``backups`` in the state folder."""
        raw = self.database.backup_dir
        return Path(raw).expanduser().absolute() if raw else self.state_path / "backups"

    @property
    def stack_dir(self) -> Path:
        """The native stack's folder: configs, data, logs, the pid record and the lock."""
        return self.state_path / "stack"

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some settings changed, named as their variables without the prefix
        (``api_port=8001`` for ``ORCH_API_PORT``); tests and the CLI use this."""
        sections: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for name, value in changes.items():
            if name in ("state_dir", "extra"):
                top[name] = value
                continue
            section, attribute = _field_of(name.upper())
            sections.setdefault(section, {})[attribute] = value
        return replace(self, **top, **{section: replace(getattr(self, section), **values)
                                       for section, values in sections.items()})


def _masked_repr(self: Any) -> str:
    """The dataclass ``repr``, with the secret fields as ``_shown`` makes them."""
    shown = []
    for f in fields(self):
        if f.repr:
            value = getattr(self, f.name)
            shown.append(f"{f.name}={_shown(value) if f.metadata.get('secret') else repr(value)}")
    return f"{type(self).__qualname__}({', '.join(shown)})"


def _shown(value: Any) -> str:
    """A secret as ``repr`` shows it: a URL without its password, a mapping without its values,
    anything else as ``'***'``; an empty one stays empty (``repr`` still tells set from unset)."""
    if not value:
        return repr(value)
    if isinstance(value, Mapping):
        return repr(dict.fromkeys(value, "***"))
    scheme, sep, rest = str(value).partition("://")
    creds, at, host = rest.rpartition("@")
    if not sep:
        return repr("***")
    if at and ":" in creds:
        return repr(f"{scheme}://{creds.split(':', 1)[0]}:***@{host}")
    return repr(value)


for _section in (*SECTIONS.values(), Settings):  # every section, so ``secret=True`` suffices
    setattr(_section, "__repr__", _masked_repr)  # noqa: B010 (mypy refuses assigning a method)


def unknown_variables(settings: Settings) -> list[str]:
    """One line per ``ORCH_*`` variable that no setting reads (a typo would do nothing)."""
    known = [PREFIX + f.metadata["env"] for section in SECTIONS.values()
             for f in _variables(section)] + [PREFIX + "STATE_DIR"]
    lines = []
    for name in sorted(settings.extra):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"{name} is not a setting of the orchestrator and is ignored{hint}")
    return lines


def environment(settings: Settings, *, secret: bool) -> dict[str, str]:
    """Every ``ORCH_*`` variable (the secret ones, or the others) with its value in
    ``settings``, as text ``from_env`` reads back to the same value: a deployment's
    configuration written out whole."""
    out = {}
    for name, section in SECTIONS.items():
        for f in _variables(section):
            if f.metadata["secret"] == secret:
                out[PREFIX + f.metadata["env"]] = _text(getattr(getattr(settings, name), f.name))
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


class SettingsError(ValueError):
    """An ``ORCH_*`` variable holds a value of the wrong type."""


def _variables(section: type) -> list[Field[Any]]:
    return [f for f in fields(section) if "env" in f.metadata]


def _field_of(variable: str) -> tuple[str, str]:
    """The section and attribute that ``ORCH_<variable>`` sets."""
    for name, section in SECTIONS.items():
        for f in _variables(section):
            if f.metadata["env"] == variable:
                return name, f.name
    raise TypeError(f"no setting is read from {PREFIX}{variable}")


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
