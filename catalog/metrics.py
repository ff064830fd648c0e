"""The metric catalog: every metric defined once, as an object. Alerts and dashboards import these.

Two kinds of entries:
- instrumented metrics: prometheus-client objects the code updates where things happen;
- sampled metrics (:class:`Sampled`): read at scrape time from PostgreSQL and RabbitMQ by the API's
  sampler, for state that lives outside any one process (tasks by status, queue depth, ...).

Label vocabulary: ``agent``, ``queue``, ``outcome``, ``route``, ``method``, ``status``, plus
``operation`` (database queries), ``model`` (AI agents), ``action`` (reconciler repairs) and
``volume`` (watched disks, by name). Never a task id, raw URL, path or host name.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

NAMESPACE = "orchestrator"

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                120.0, 300.0, 600.0, 1200.0, 1800.0)
"""Queue wait, run and end-to-end times: 5 ms up to 30 minutes."""
MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True)
class Sampled:
    """A metric computed at scrape time rather than updated in the code path."""

    name: str
    kind: str  # "gauge" or "counter"
    documentation: str
    labelnames: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{NAMESPACE}_{self.name}"


@dataclass(frozen=True)
class External:
    """A series the code does not define: prometheus-client's process collector, or ``up``,
    which Prometheus itself writes for every scrape target. Listed so rules and panels can
    reference it as an object too."""

    name: str
    kind: str
    documentation: str
    labelnames: tuple[str, ...] = ()
    exposed: bool = True
    """False for series no orchestrator process serves: Prometheus's ``up``, RabbitMQ's own."""

    @property
    def full_name(self) -> str:
        return self.name


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, namespace=NAMESPACE)


def _gauge(name: str, doc: str, labels: tuple[str, ...] = (), mode: str = "livesum") -> Gauge:
    return Gauge(name, doc, labels, namespace=NAMESPACE, multiprocess_mode=mode)  # type: ignore[arg-type]


def _histogram(name: str, doc: str, labels: tuple[str, ...],
               buckets: tuple[float, ...]) -> Histogram:
    return Histogram(name, doc, labels, namespace=NAMESPACE, buckets=buckets)


# --- API (RED) ---------------------------------------------------------------------------------
HTTP_REQUESTS = _counter("http_requests", "HTTP requests answered, by route template.",
                         ("route", "method", "status"))
HTTP_REQUEST_DURATION = _histogram("http_request_duration_seconds",
                                   "Time to answer an HTTP request.", ("route", "method"),
                                   HTTP_BUCKETS)
HTTP_IN_FLIGHT = _gauge("http_requests_in_flight", "HTTP requests being answered now.")
RATE_LIMITED = _counter("rate_limited_requests",
                        "Requests refused with 429, by the limit reached: rate (the tenant's"
                        " request rate), active_tasks (its unfinished tasks) or auth_failures"
                        " (failed authentications of one client address).", ("limit",))
RATE_LIMITER_FAIL_OPEN = _counter("rate_limiter_fail_open",
                                  "Requests let through unchecked because Redis, which holds"
                                  " the rate limits, could not answer.")

# --- task lifecycle (by agent type) --------------------------------------------------------------
TASKS_SUBMITTED = _counter("tasks_submitted", "Tasks accepted by the API.", ("agent",))
TASKS_STARTED = _counter("tasks_started", "Task attempts started by workers.", ("agent",))
TASKS_SUCCEEDED = _counter("tasks_succeeded", "Tasks that finished successfully.", ("agent",))
TASKS_FAILED = _counter("tasks_failed", "Task attempts that raised or timed out.", ("agent",))
TASKS_RETRIED = _counter("tasks_retried", "Retries scheduled after a failed attempt.",
                         ("agent",))
TASKS_DEAD_LETTERED = _counter("tasks_dead_lettered",
                               "Tasks that went dead (retries exhausted or non-retryable).",
                               ("agent",))
TASKS_CANCELLED = _counter("tasks_cancelled", "Tasks cancelled on request.", ("agent",))
THROTTLE_LIMITS = ("rate", "tokens", "concurrency", "key_concurrency")
"""The ``limit`` label values of ``TASKS_THROTTLED``: the flow limits a delivery can wait for."""
TASKS_THROTTLED = _counter("tasks_throttled", "Deliveries held back by a flow limit of their"
                           " agent type (rate, tokens, concurrency, key_concurrency): the task"
                           " waits, no attempt is spent.", ("agent", "limit"))
DUPLICATE_DELIVERIES = _counter("duplicate_deliveries",
                                "Deliveries of a task that was finished or owned by another run;"
                                " dropped.", ("agent",))
TASKS_IN_PROGRESS = _gauge("tasks_in_progress", "Tasks running in this process.", ("agent",))
QUEUE_WAIT = _histogram("task_queue_wait_seconds",
                        "Time from a task (or its retry) becoming due to a worker starting it.",
                        ("agent",), TASK_BUCKETS)
RUN_DURATION = _histogram("task_run_duration_seconds", "Time an agent spent on one attempt.",
                          ("agent",), TASK_BUCKETS)
END_TO_END = _histogram("task_end_to_end_seconds",
                        "Time from submission to the final state, by outcome.",
                        ("agent", "outcome"), TASK_BUCKETS)

# --- outbox and publishing -----------------------------------------------------------------------
OUTBOX_PUBLISHED = _counter("outbox_published", "Outbox messages confirmed by the broker.")
OUTBOX_PUBLISH_FAILURES = _counter("outbox_publish_failures",
                                   "Outbox messages the broker did not confirm (kept for retry).")
PUBLISH_DURATION = _histogram("publish_duration_seconds",
                              "Time from publish to the broker's confirm.", ("queue",),
                              HTTP_BUCKETS)

SCHEDULE_FIRES = _counter("schedule_fires", "Due times of recurring schedules handled: fired (a"
                          " task created) or skipped (missed while no scheduler ran; the"
                          " schedule's policy is skip).", ("outcome",))

TASKS_PURGED = _counter("tasks_purged", "Finished tasks (with their timelines) deleted by"
                        " retention, by their final status.", ("status",))
RECONCILED = _counter("reconciled_tasks",
                      "Tasks the reconciler repaired: republished (their message was lost) or"
                      " dead_lettered (the broker dead-lettered their message).",
                      ("agent", "action"))

# --- database ------------------------------------------------------------------------------------
DB_QUERY_DURATION = _histogram("db_query_duration_seconds", "Time of one database operation.",
                               ("operation",), HTTP_BUCKETS)
DB_UP = _gauge("db_up", "1 when this process can query PostgreSQL.", mode="min")
DB_POOL_SIZE = _gauge("db_pool_size", "Connections open in the pool (idle and in use).")
DB_POOL_MIN = _gauge("db_pool_min", "Configured minimum pool size.")
DB_POOL_MAX = _gauge("db_pool_max", "Configured maximum pool size.")
DB_POOL_AVAILABLE = _gauge("db_pool_available", "Idle connections ready in the pool.")
DB_POOL_WAITING = _gauge("db_pool_requests_waiting", "Requests waiting for a pool connection.")
DB_POOL_USAGE = _gauge("db_pool_usage_ratio",
                       "Connections in use divided by the pool maximum (worst process).",
                       mode="max")
DB_CONNECTION_ERRORS = _counter("db_connection_errors",
                                "Failed attempts to open a database connection.")

INTEGRITY_FAILURES = _counter("integrity_check_failures",
                              "Tasks whose stored input no longer matches its checksum.",
                              ("agent",))

# --- broker and cache (per process) --------------------------------------------------------------
BROKER_UP = _gauge("broker_up", "1 when this process's RabbitMQ connection is open.", mode="min")
REDIS_UP = _gauge("redis_up", "1 when this process can reach Redis.", mode="min")
CACHE_REQUESTS = _counter("cache_requests", "Status-cache reads, by outcome (hit, miss, error).",
                          ("outcome",))

# --- agent processes -----------------------------------------------------------------------------
AGENT_SLOTS_USED = _gauge("agent_slots_used", "Task slots in use in this agent process.")
AGENT_SLOTS_AVAILABLE = _gauge("agent_slots_available", "Free task slots in this agent process.")
EVENT_LOOP_LAG = _gauge("event_loop_lag_seconds",
                        "How late the event loop ran a timer (worst process).", mode="max")

DISK_FREE = _gauge("disk_free_bytes", "Space left for unprivileged writes on a volume the"
                   " orchestrator writes to (state folder, database data folder).",
                   ("volume",), mode="min")
DISK_SIZE = _gauge("disk_size_bytes", "Size of a volume the orchestrator writes to.",
                   ("volume",), mode="max")

# --- AI agents -----------------------------------------------------------------------------------
MODEL_CALLS = _counter("model_calls", "Calls to a language model (failed ones too).",
                       ("agent", "model"))
MODEL_ERRORS = _counter("model_errors", "Language-model calls that failed, by kind: timeout,"
                        " rate_limited (429), server_error (5xx), invalid_response,"
                        " unreachable, refused (another 4xx).", ("agent", "model", "kind"))
MODEL_COST = _counter("model_cost_usd", "What language-model calls cost, in USD, at the price"
                      " table (ORCH_LLM_PRICES; a model without a price costs 0).",
                      ("agent", "model"))
MODEL_INPUT_TOKENS = _counter("model_input_tokens", "Prompt tokens sent to a language model.",
                              ("agent", "model"))
MODEL_OUTPUT_TOKENS = _counter("model_output_tokens",
                               "Completion tokens received from a language model.",
                               ("agent", "model"))
MODEL_LATENCY = _histogram("model_call_duration_seconds", "Latency of one language-model call.",
                           ("agent", "model"), MODEL_BUCKETS)

CALLBACK_OUTCOMES = ("delivered", "retried", "failed", "refused")
CALLBACKS = _counter("callbacks", "Completion-callback deliveries by outcome: delivered (a 2xx),"
                     " retried (failed, tried again later), failed (the last attempt failed:"
                     " given up), refused (an address callbacks may not call).", ("outcome",))
CALLBACK_DURATION = _histogram("callback_duration_seconds", "Time of one callback delivery"
                               " attempt (until the receiver's answer).", (), HTTP_BUCKETS)

STREAM_KINDS = ("progress", "output")
STREAM_OUTCOMES = ("written", "dropped")
STREAM_ENTRIES = _counter("stream_entries", "Progress and output entries agents reported while"
                         " running (kind progress or output), by outcome: written to the"
                         " task's stream, or dropped (Redis could not take them).",
                         ("agent", "kind", "outcome"))
STREAM_FOLLOWERS = _gauge("stream_followers", "Clients following a task's stream"
                          " (GET /v1/tasks/{id}/stream) now.")

# --- build ---------------------------------------------------------------------------------------
BUILD_INFO = _gauge("build_info", "Always 1; the labels say what is running.",
                    ("version", "python", "component"), mode="max")

# --- sampled at scrape time by the API (global state) --------------------------------------------
TASKS_BY_STATUS = Sampled("tasks", "gauge", "Tasks in PostgreSQL by agent and status.",
                          ("agent", "status"))
OLDEST_QUEUED_AGE = Sampled("oldest_queued_task_age_seconds", "gauge",
                            "Age of the oldest task waiting to start (queued or retry due).",
                            ("agent",))
OUTBOX_UNPUBLISHED = Sampled("outbox_unpublished_tasks", "gauge",
                             "Committed tasks whose message the broker has not confirmed yet.")
OUTBOX_OLDEST_AGE = Sampled("outbox_oldest_unpublished_age_seconds", "gauge",
                            "Age of the oldest unpublished outbox entry.")
QUEUE_MESSAGES = Sampled("queue_messages", "gauge", "Messages ready in a queue.", ("queue",))
QUEUE_CONSUMERS = Sampled("queue_consumers", "gauge", "Consumers attached to a queue.",
                          ("queue",))
DEAD_LETTERS_OPEN = Sampled("dead_letters_open", "gauge",
                            "Dead letters recorded and not replayed (orchestrator dlq list), by"
                            " agent type (orphans: the agent of their queue, else unknown).",
                            ("agent",))
RUNNING_PAST_TIMEOUT = Sampled("tasks_running_past_timeout", "gauge",
                               "Tasks still running 10 s after their timeout: a hung"
                               " worker, or one whose message the broker gave up on.",
                               ("agent",))
AGENTS_LIVE = Sampled("agents_live", "gauge",
                      "Agent worker processes with a fresh heartbeat, by agent type.", ("agent",))
HEARTBEAT_AGE = Sampled("agent_heartbeat_age_seconds", "gauge",
                        "Oldest heartbeat among the workers of an agent type seen in the last"
                        " 10 minutes.", ("agent",))
SCHEDULES_ACTIVE = Sampled("schedules_active", "gauge", "Recurring schedules not paused.")
SCHEDULE_OVERDUE = Sampled("schedule_overdue_seconds", "gauge",
                           "How late the most overdue active schedule is: its next due time"
                           " passed this long ago and it has not fired (0: none is late).")
BACKUP_LAST_VERIFIED = Sampled("backup_last_verified_timestamp_seconds", "gauge",
                               "When the newest backup that passed `orchestrator backup verify`"
                               " was verified (Unix time; 0: none has been).")
BACKUP_VERIFIED_AGE = Sampled("backup_last_verified_age_seconds", "gauge",
                              "Seconds since the newest backup that passed `orchestrator backup"
                              " verify` was verified (with none, since the database's first"
                              " migration).")

# --- standard series ----------------------------------------------------------------------------
PROCESS_RESIDENT_MEMORY = External("process_resident_memory_bytes", "gauge",
                                   "Resident memory of the process (API: all server processes).")
PROCESS_CPU = External("process_cpu_seconds_total", "counter", "CPU time used.")
PROCESS_START_TIME = External("process_start_time_seconds", "gauge",
                              "When the process started (Unix time).")
PROCESS_OPEN_FDS = External("process_open_fds", "gauge", "Open file descriptors.")
PROCESS_MAX_FDS = External("process_max_fds", "gauge", "The file-descriptor limit.")
GC_COLLECTIONS = External("python_gc_collections_total", "counter",
                         "Garbage collections by generation.", ("generation",))
UP = External("up", "gauge", "1 when Prometheus scraped the target (written by Prometheus).",
              ("job", "instance"), exposed=False)
RABBITMQ_RAFT_TERM = External(
    "rabbitmq_raft_term_total", "counter",
    "The Raft term of a quorum queue's member, one series per member online (RabbitMQ's"
    " per-object metrics on each node).", ("vhost", "queue"), exposed=False)
EXTERNAL: tuple[External, ...] = (PROCESS_RESIDENT_MEMORY, PROCESS_CPU, PROCESS_START_TIME,
                                  PROCESS_OPEN_FDS,
                                  PROCESS_MAX_FDS, GC_COLLECTIONS, UP, RABBITMQ_RAFT_TERM)

SAMPLED: tuple[Sampled, ...] = tuple(v for v in tuple(globals().values())
                                     if isinstance(v, Sampled))
INSTRUMENTED: tuple[MetricWrapperBase, ...] = tuple(
    v for v in tuple(globals().values()) if isinstance(v, MetricWrapperBase))



AnyMetric = MetricWrapperBase | Sampled | External


def series_name(metric: AnyMetric, suffix: str = "") -> str:
    """The name a PromQL query uses: counters get ``_total``; histograms take ``suffix``
    (``_bucket``, ``_sum`` or ``_count``)."""
    if isinstance(metric, External):
        return metric.full_name
    if isinstance(metric, Sampled):
        return metric.full_name + ("_total" if metric.kind == "counter" else "")
    name: str = metric._name
    if metric._type == "counter":
        return f"{name}_total"
    return name + suffix


def label_names(metric: AnyMetric) -> tuple[str, ...]:
    if isinstance(metric, Sampled | External):
        return metric.labelnames
    return tuple(metric._labelnames)
