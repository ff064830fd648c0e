"""The nine troubleshooting trees of the operations guide, as data.

Each question's check reads the facts and returns the evidence for "yes" (the numbers), or
nothing. Limits come from the alert definitions where an alert watches the same signal, so the
doctor and the pages agree.
"""

from __future__ import annotations

from alerts import scenarios as sc
from alerts.thresholds import MEMORY_LIMIT_BYTES, THRESHOLDS
from catalog import metrics, names
from catalog.metrics import series_name
from operations.doctor.engine import Ask, Check, Fork, Tree, Unknown, Verdict
from operations.doctor.facts import Facts, ProcessFacts

STALLED_AFTER_S = 60.0
"""A due task waiting this long to start counts as stalled."""
SLOW_DATABASE_S = 0.05
"""A ``SELECT 1`` round trip above this is a slow database."""
SLOW_READY_S = 0.5
MIN_ATTEMPTS = 20
"""Attempts in the recent window below which no ratio is judged."""
FAILED_KINDS = ("retry_scheduled", "dead_lettered")


def limit(alert: str, level: str = "warning") -> float:
    """An alert's warning (or critical) value."""
    for threshold in THRESHOLDS:
        if threshold.alert == alert:
            value = getattr(threshold, level)
            if value is not None:
                return float(value)
    raise KeyError(f"{alert} has no {level} level")


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


# --- the facts, as the questions need them --------------------------------------------------

def _need_tasks(facts: Facts) -> None:
    if not facts.tasks.known:
        why = facts.tasks.error or facts.database.error or "none"
        raise Unknown(f"without PostgreSQL's facts ({why})")


def api_unreachable(facts: Facts) -> list[str]:
    if facts.api.live:
        return []
    return [f"the API does not answer /health/live: {facts.api.error or 'no 200 answer'}"]


def dependency_down(name: str) -> Check:
    def check(facts: Facts) -> list[str]:
        error = facts.api.failing.get(name)
        return [f"/health/ready reports {name} down: {error}"] if error else []
    return check


def database_unreachable(facts: Facts) -> list[str]:
    if facts.database.reachable:
        return []
    return [f"PostgreSQL: {facts.database.error}"]


def database_answers(facts: Facts) -> list[str]:
    if not facts.database.reachable:
        return []
    return [f"PostgreSQL answers the doctor (SELECT 1 in"
            f" {(facts.database.latency_s or 0) * 1000:.1f} ms): the API's pool is the"
            " bottleneck, not the server"]


def pool_strained(facts: Facts) -> list[str]:
    seen = []
    usage = facts.api.gauges.get(series_name(metrics.DB_POOL_USAGE))
    if usage is not None and usage >= limit("DbPoolUsageHigh"):
        seen.append(f"API pool usage {_percent(usage)} (alert at"
                    f" {_percent(limit('DbPoolUsageHigh'))})")
    waiting = facts.api.gauges.get(series_name(metrics.DB_POOL_WAITING))
    if waiting:
        seen.append(f"{waiting:.0f} API requests wait for a pool connection")
    if facts.database.connections is not None:
        used, most = facts.database.connections
        if used >= 0.9 * most:
            seen.append(f"server connections {used} of max_connections {most}")
    return seen


def long_transactions(facts: Facts) -> list[str]:
    return [f"pid {t['pid']} ({t['state']}) has held a transaction open for"
            f" {float(t['age_s']):.0f}s: {t['query']}" for t in facts.database.long_transactions]


def lock_waits(facts: Facts) -> list[str]:
    waits = facts.database.lock_waits
    return [f"{waits} sessions wait for a lock"] if waits else []


def database_slow(facts: Facts) -> list[str]:
    latency = facts.database.latency_s
    if latency is None or latency <= SLOW_DATABASE_S:
        return []
    return [f"SELECT 1 takes {latency * 1000:.0f} ms (median of 3; healthy is under"
            f" {SLOW_DATABASE_S * 1000:.0f} ms)"]


def api_slow(facts: Facts) -> list[str]:
    latency = facts.api.ready_latency_s
    if latency is None or latency <= SLOW_READY_S:
        return []
    return [f"/health/ready took {latency:.2f}s"]


def event_loop_lagging(facts: Facts) -> list[str]:
    lag = facts.api.gauges.get(series_name(metrics.EVENT_LOOP_LAG))
    if lag is None or lag <= limit("EventLoopLagHigh"):
        return []
    return [f"the API's event loop runs timers {lag:.2f}s late"]


def broker_unreachable(facts: Facts) -> list[str]:
    return [] if facts.broker.reachable else [facts.broker.error]


def redis_unusable(facts: Facts) -> list[str]:
    return [] if facts.redis.reachable else [f"Redis: {facts.redis.error}"]


def outbox_stuck(facts: Facts) -> list[str]:
    _need_tasks(facts)
    oldest = facts.tasks.outbox_oldest_s
    if oldest <= limit("OutboxBacklog"):
        return []
    return [f"{facts.tasks.outbox_unpublished} accepted tasks unpublished, the oldest for"
            f" {oldest:.0f}s"]


def messages_republished(facts: Facts) -> list[str]:
    _need_tasks(facts)
    return [f"{agent}: {kinds['republished']} tasks published again in the last"
            " 10 minutes (their message had left the broker)"
            for agent, kinds in sorted(facts.tasks.recent.items())
            if kinds.get("republished")]


def stalled_agents(facts: Facts) -> list[str]:
    _need_tasks(facts)
    return [f"{agent}: the oldest due task has waited {age:.0f}s to start"
            for agent, age in sorted(facts.tasks.oldest_waiting_s.items())
            if age > STALLED_AFTER_S]


def _stalled(facts: Facts) -> set[str]:
    return {agent for agent, age in facts.tasks.oldest_waiting_s.items()
            if age > STALLED_AFTER_S}


def _live_agents(facts: Facts) -> set[str]:
    return {agent for worker in facts.tasks.live_workers for agent in worker["agents"]}


def agents_without_workers(facts: Facts) -> list[str]:
    _need_tasks(facts)
    expected = {*facts.tasks.deployed, *_stalled(facts)}
    missing = sorted(expected - _live_agents(facts))
    return [f"{agent}: no live worker (no heartbeat within"
            " ORCH_HEARTBEAT_TTL_S)" for agent in missing]


def queues_without_consumers(facts: Facts) -> list[str]:
    _need_tasks(facts)
    if not facts.broker.reachable:
        raise Unknown(f"without RabbitMQ's facts ({facts.broker.error})")
    seen = []
    for agent in sorted(_stalled(facts) & _live_agents(facts)):
        for band, name in enumerate(names.agent_queues(agent)):
            queue = facts.broker.queues.get(name)  # a higher band is named when it holds some
            if queue is not None and queue.consumers == 0 and (queue.ready or band == 0):
                seen.append(f"{name}: {queue.ready} messages, no consumer,"
                            f" while {agent} workers send heartbeats")
    return seen


def running_past_timeout(facts: Facts) -> list[str]:
    _need_tasks(facts)
    return [f"{agent}: {count} tasks still running 10 s past their timeout"
            for agent, count in sorted(facts.tasks.running_past_timeout.items()) if count]


def slots_full(facts: Facts) -> list[str]:
    _need_tasks(facts)
    seen = []
    for agent in sorted(_stalled(facts) & _live_agents(facts)):
        workers = [w for w in facts.tasks.live_workers if agent in w["agents"]]
        busy = sum(int(w["in_flight"]) for w in workers)
        slots = sum(int(w["concurrency"]) for w in workers)
        if busy >= slots:
            seen.append(f"{agent}: every slot busy ({busy} in flight, {slots} slots over"
                        f" {len(workers)} workers) while tasks wait")
    return seen


def _ratio(facts: Facts, kinds: tuple[str, ...], alert: str,
           production_only: bool = True) -> list[str]:
    _need_tasks(facts)
    seen = []
    for agent, counts in sorted(facts.tasks.recent.items()):
        if production_only and agent in names.DEMO_AGENTS:
            continue
        started = counts.get("started", 0)
        bad = sum(counts.get(kind, 0) for kind in kinds)
        if started >= MIN_ATTEMPTS and bad / started > limit(alert):
            seen.append(f"{agent}: {bad} of {started} attempts in the last 10 minutes"
                        f" ({_percent(bad / started)}; alert at {_percent(limit(alert))})")
    return seen


def failure_ratio_high(facts: Facts) -> list[str]:
    return _ratio(facts, FAILED_KINDS, "TaskFailureRatioHigh")


def duplicates_high(facts: Facts) -> list[str]:
    return _ratio(facts, ("duplicate_dropped",), "DuplicateDeliveriesHigh",
                  production_only=False)


def dead_letters_growing(facts: Facts) -> list[str]:
    _need_tasks(facts)
    dead = sum(kinds.get("dead_lettered", 0) for kinds in facts.tasks.recent.values())
    if dead <= limit("DeadLetterQueueGrowing"):
        return []
    return [f"{dead} tasks went dead in the last 10 minutes"]


def integrity_failures(facts: Facts) -> list[str]:
    _need_tasks(facts)
    count = facts.tasks.integrity_failures
    return [f"{count} tasks failed their input checksum in the last 10 minutes"] if count else []


def disks_filling(facts: Facts) -> list[str]:
    return [f"volume {name}: {_percent(u.free_ratio)} free ({_mib(u.free_bytes)} of"
            f" {_mib(u.size_bytes)})" for name, u in sorted(facts.disks.items())
            if u.free_ratio < limit("DiskSpaceLow")]


def _orchestrator(facts: Facts) -> list[ProcessFacts]:
    """The stack's API and agent processes (the alerts watch those, not Prometheus')."""
    return [p for p in facts.processes if p.running and p.name.startswith(("api", "agent"))]


def fds_exhausting(facts: Facts) -> list[str]:
    return [f"{p.name} (pid {p.pid}): {p.open_fds} of {p.max_fds} file descriptors open"
            for p in _orchestrator(facts)
            if p.open_fds is not None and p.max_fds
            and p.open_fds / p.max_fds > limit("FileDescriptorsExhausting")]


def memory_high(facts: Facts) -> list[str]:
    most = limit("ProcessMemoryHigh")
    return [f"{p.name} (pid {p.pid}): {_mib(p.resident_bytes)} resident (alert at"
            f" {_mib(most)} of a {_mib(MEMORY_LIMIT_BYTES)} limit)"
            for p in _orchestrator(facts)
            if p.resident_bytes is not None and p.resident_bytes > most]


def stack_processes_gone(kind: str) -> Check:
    """A stack process of ``kind`` exited and nothing took its place (the API does not answer;
    an agent type has no live worker)."""
    def check(facts: Facts) -> list[str]:
        replaced = facts.api.live if kind == "api" else not agents_without_workers(facts)
        if replaced:
            return []
        return [f"the stack's {p.name} (pid {p.pid}) is not running"
                for p in facts.processes if not p.running and p.name.startswith(kind)]
    return check


def monitoring_blind(facts: Facts) -> list[str]:
    seen = [f"Prometheus cannot scrape {target}" for target in facts.monitoring.targets_down]
    if facts.monitoring.expected and not facts.monitoring.prometheus_up:
        seen.append(f"the stack's Prometheus does not answer at"
                    f" {facts.monitoring.prometheus_url}")
    if facts.monitoring.expected and not facts.monitoring.alertmanager_up:
        seen.append(f"the stack's Alertmanager does not answer at"
                    f" {facts.monitoring.alertmanager_url}: nobody would be paged")
    return seen


# --- verdicts ---------------------------------------------------------------------------------

API_DOWN = Verdict(sc.API_DOWN, "ApiDown", "The API is down: clients cannot submit or read.")
DATABASE_DOWN = Verdict(sc.DATABASE_DOWN, "DatabaseDown",
                        "PostgreSQL cannot be used: submissions fail, workers hold deliveries.")
POOL_HELD = Verdict(sc.POOL_EXHAUSTION, "DbPoolExhausted",
                    "Database connections are held by long transactions: find and end them.")
POOL_LOAD = Verdict(sc.POOL_EXHAUSTION, "DbPoolUsageHigh",
                    "The database pool is nearly used up by load.")
BROKER_DOWN = Verdict(sc.BROKER_DOWN, "RabbitmqDown",
                      "RabbitMQ cannot be used: accepted tasks wait in the outbox.")
REDIS_DOWN = Verdict(sc.REDIS_DOWN, "RedisDown",
                     "Redis is down or hung: status reads fall back to PostgreSQL.")
ERRORS = Verdict(sc.HIGH_ERROR_RATE, "TaskFailureRatioHigh",
                 "An agent type fails often: look at its errors before its dependency.")
STALLED_HUNG = Verdict(sc.PROCESSING_STALLED, "TasksRunningPastTimeout",
                       "A worker is hung on its tasks: restart it.")
STALLED_SLOW = Verdict(sc.PROCESSING_STALLED, "OldestQueuedTaskTooOld",
                       "The agents are too slow for the work: every slot is busy.")
CORRUPTION = Verdict(sc.DATA_CORRUPTION, "DataIntegrityCheckFailed",
                     "Stored task data changed after submission.")
LOST = Verdict(sc.MESSAGE_LOSS, "MessagesLost",
               "Messages left the broker while their tasks waited; the reconciler republished"
               " them.")
UNPUBLISHED = Verdict(sc.MESSAGE_LOSS, "OutboxBacklog",
                      "Accepted tasks are not getting published.")
MEMORY = Verdict(sc.MEMORY_LEAK, "ProcessMemoryHigh", "A process uses memory near its limit.")
LATENCY = Verdict(sc.HIGH_LATENCY, "ApiLatencyHigh", "The system is slow.")
LOOP_LAG = Verdict(sc.HIGH_LATENCY, "EventLoopLagHigh",
                   "Something blocks the API's event loop.")
DISK = Verdict(sc.RESOURCE_EXHAUSTION, "DiskSpaceLow", "A volume is nearly full.")
FDS = Verdict(sc.RESOURCE_EXHAUSTION, "FileDescriptorsExhausting",
              "A process is running out of file descriptors.")
AGENTS_MISSING = Verdict(sc.AGENT_NOT_RESPONDING, "AgentsMissing",
                         "An agent type has no live worker: its tasks wait.")
NOT_CONSUMING = Verdict(sc.AGENT_NOT_RESPONDING, "QueueWithoutConsumers",
                        "Workers run but do not consume their queue.")
DUPLICATES = Verdict(sc.DUPLICATES, "DuplicateDeliveriesHigh",
                     "Tasks are delivered more than once (dropped, but a sign of trouble).")
DEAD_LETTERS = Verdict(sc.DEAD_LETTER_GROWTH, "DeadLetterQueueGrowing",
                       "Tasks go dead faster than usual.")
MONITORING_GAP = Verdict(sc.MONITORING_GAP, "ScrapeTargetDown",
                         "Monitoring is blind to part of the system.")

# --- questions asked in more than one tree ------------------------------------------------------

ASK_DATABASE_SLOW = Ask("Is the database slow to answer?", database_slow, yes=LATENCY)
ASK_LOST = Ask("Were messages lost (republished)?", messages_republished, yes=LOST)
BROKER_QUESTION = "Is RabbitMQ unreachable?"

# --- the trees -------------------------------------------------------------------------------

TREES: tuple[Tree, ...] = (
    Tree(1, "API unavailability", Ask(
        "Is the API unreachable?", api_unreachable, yes=API_DOWN,
        no=Fork((
            Ask("Does /health/ready report PostgreSQL down?", dependency_down("postgresql"),
                yes=Ask("Does PostgreSQL answer the doctor itself?", database_answers,
                        yes=POOL_LOAD, no=DATABASE_DOWN)),
            Ask("Does /health/ready report RabbitMQ down?", dependency_down("rabbitmq"),
                yes=BROKER_DOWN),
            Ask("Does /health/ready report Redis down?", dependency_down("redis"),
                yes=REDIS_DOWN),
        )))),
    Tree(2, "task processing stalled", Fork((
        Ask("Do due tasks wait long to start?", stalled_agents, yes=Fork((
            Ask("Does an agent type with waiting tasks have no live worker?",
                agents_without_workers, yes=AGENTS_MISSING),
            Ask("Do live workers leave their queue without a consumer?",
                queues_without_consumers, yes=NOT_CONSUMING),
            Ask("Is every slot of the live workers busy?", slots_full, yes=STALLED_SLOW),
            ASK_LOST,
        ))),
        Ask("Are tasks running past their timeout?", running_past_timeout, yes=STALLED_HUNG),
        Ask("Do accepted tasks stay unpublished?", outbox_stuck,
            yes=Ask(BROKER_QUESTION, broker_unreachable, yes=BROKER_DOWN,
                    no=UNPUBLISHED)),
    ))),
    Tree(3, "high error rate", Fork((
        Ask("Do an agent type's attempts fail often?", failure_ratio_high, yes=ERRORS),
        Ask("Do tasks go dead in numbers?", dead_letters_growing, yes=DEAD_LETTERS),
    ))),
    Tree(4, "performance", Fork((
        ASK_DATABASE_SLOW,
        Ask("Is the API slow to answer?", api_slow, yes=LATENCY),
        Ask("Does the API's event loop lag?", event_loop_lagging, yes=LOOP_LAG),
    ))),
    Tree(5, "database", Ask(
        "Is PostgreSQL unreachable?", database_unreachable, yes=DATABASE_DOWN,
        no=Fork((
            Ask("Are the pool or the server's connections nearly used up?", pool_strained,
                yes=Ask("Do long transactions hold connections?", long_transactions,
                        yes=POOL_HELD, no=POOL_LOAD)),
            Ask("Do long transactions hold connections?", long_transactions, yes=Ask(
                "Do sessions wait for their locks?", lock_waits, yes=POOL_HELD)),
            ASK_DATABASE_SLOW,
        )))),
    Tree(6, "RabbitMQ", Ask(
        BROKER_QUESTION, broker_unreachable, yes=BROKER_DOWN,
        no=Fork((
            Ask("Do accepted tasks stay unpublished?", outbox_stuck, yes=UNPUBLISHED),
            ASK_LOST,
        )))),
    Tree(7, "resource exhaustion", Fork((
        Ask("Is a volume nearly full?", disks_filling, yes=DISK),
        Ask("Is a process running out of file descriptors?", fds_exhausting, yes=FDS),
        Ask("Does a process use memory near its limit?", memory_high, yes=MEMORY),
        Ask("Is Redis down or hung?", redis_unusable, yes=REDIS_DOWN),
    ))),
    Tree(8, "data consistency", Fork((
        Ask("Did stored task data fail its checksum?", integrity_failures, yes=CORRUPTION),
        Ask("Are tasks delivered more than once?", duplicates_high, yes=DUPLICATES),
        ASK_LOST,
    ))),
    Tree(9, "agents", Fork((
        Ask("Does a deployed agent type have no live worker?", agents_without_workers,
            yes=AGENTS_MISSING),
        Ask("Did a stack agent process exit?", stack_processes_gone("agent"),
            yes=AGENTS_MISSING),
        Ask("Did the stack's API process exit?", stack_processes_gone("api"), yes=API_DOWN),
        Ask("Is monitoring blind to part of the system?", monitoring_blind,
            yes=MONITORING_GAP),
    ))),
)
