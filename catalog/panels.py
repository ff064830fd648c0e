"""Dashboard uids and the panels alerts link to (``dashboard_url``). The dashboards are built
with these same objects, so a link can only point at a panel that exists."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Panel:
    """Where a signal is drawn: a dashboard uid and a panel id within it."""

    dashboard: str
    panel_id: int
    title: str

    @property
    def path(self) -> str:
        """The panel's address under a Grafana's base URL."""
        return f"/d/{self.dashboard}?viewPanel={self.panel_id}"


OVERVIEW = "orch-overview"
API = "orch-api"
TASKS = "orch-tasks"
BROKER = "orch-broker"
DATA = "orch-data"
PROCESS = "orch-process"
SLOS = "orch-slos"
DATASOURCE_UID = "orch-prometheus"
"""The Prometheus datasource every panel queries (provisioned with the dashboards)."""

DASHBOARD_TITLES = {
    OVERVIEW: "Orchestrator / Overview",
    API: "Orchestrator / API",
    TASKS: "Orchestrator / Tasks and agents",
    BROKER: "Orchestrator / Broker",
    DATA: "Orchestrator / Database and cache",
    PROCESS: "Orchestrator / Process",
    SLOS: "Orchestrator / SLOs",
}

API_TARGETS = Panel(OVERVIEW, 1, "API targets up")
API_LATENCY = Panel(API, 2, "Latency percentiles")
API_ERRORS = Panel(API, 4, "5xx error ratio")
DB_UP = Panel(DATA, 1, "Database up")
DB_POOL_USAGE = Panel(DATA, 2, "Pool usage")
DB_POOL_WAITING = Panel(DATA, 3, "Requests waiting for a connection")
BROKER_UP = Panel(BROKER, 1, "Broker connections up")
QUEUE_DEPTH = Panel(BROKER, 2, "Queue depth")
QUEUE_CONSUMERS = Panel(BROKER, 3, "Consumers per queue")
DEAD_LETTERS = Panel(BROKER, 4, "Open dead letters")
OUTBOX_BACKLOG = Panel(BROKER, 5, "Outbox backlog")
PUBLISH_FAILURES = Panel(BROKER, 6, "Publish failures")
RECONCILED = Panel(BROKER, 7, "Tasks reconciled")
RABBITMQ_NODES_DOWN = Panel(BROKER, 8, "RabbitMQ nodes down")
QUORUM_MEMBERS = Panel(BROKER, 9, "Quorum queue members online")
BACKUP_AGE = Panel(DATA, 4, "Age of the last verified backup")
REDIS_UP = Panel(DATA, 5, "Redis up")
CACHE_HIT_RATIO = Panel(DATA, 6, "Cache hit ratio")
THROUGHPUT = Panel(TASKS, 1, "Task throughput by outcome")
OLDEST_QUEUED = Panel(TASKS, 3, "Oldest queued task age")
FAILURE_RATIO = Panel(TASKS, 4, "Failure ratio by agent")
AGENTS_LIVE = Panel(TASKS, 6, "Live agents")
HEARTBEAT_AGE = Panel(TASKS, 7, "Heartbeat age")
DUPLICATE_RATIO = Panel(TASKS, 8, "Duplicate deliveries")
INTEGRITY = Panel(TASKS, 9, "Integrity check failures")
EVENT_LOOP_LAG = Panel(TASKS, 10, "Event-loop lag")
RUNNING_PAST_TIMEOUT = Panel(TASKS, 11, "Tasks running past their timeout")
SCHEDULES_OVERDUE = Panel(TASKS, 12, "Most overdue schedule")
MODEL_SPEND = Panel(TASKS, 13, "Model spend rate, USD per day")
MEMORY = Panel(PROCESS, 1, "Resident memory and growth projection")
FDS = Panel(PROCESS, 3, "Open file descriptors")
DISK_FREE = Panel(PROCESS, 5, "Free disk space")
SCRAPE_TARGETS = Panel(OVERVIEW, 2, "Scrape targets up")
SLO_API = Panel(SLOS, 1, "API availability burn rate")
SLO_TASKS = Panel(SLOS, 2, "Task success burn rate")
SLO_QUEUE_WAIT = Panel(SLOS, 3, "Queue-wait latency burn rate")
