"""Every runbook threshold, as data. Rules, promtool tests, runbook and dashboard lines read these.

Expressions name metrics through the catalog (``s(metric)`` renders the series name), never as
retyped strings.
"""

from __future__ import annotations

import re

from alerts import scenarios as sc
from alerts.model import Runbook, Threshold
from catalog import metrics as m
from catalog import names, panels
from catalog.jobs import AGENT_JOB, API_JOB, ORCHESTRATOR_JOBS, RABBITMQ_JOB
from catalog.metrics import series_name as s
from catalog.priorities import BANDS
from service.settings import DatabaseSettings, LlmSettings


def _promql_regex(pattern: str) -> str:
    """A regular expression as the content of a PromQL string literal (backslashes doubled)."""
    return pattern.replace("\\", "\\\\")


_AGENT_QUEUE_PREFIX = _promql_regex(re.escape(names.AGENT_QUEUE_PREFIX))
AGENT_QUEUES = f'queue=~"{_AGENT_QUEUE_PREFIX}.+"'
QUEUE_TO_AGENT = f'"agent", "$1", "queue", "{_AGENT_QUEUE_PREFIX}([^.]+).*"'
"""``label_replace`` arguments giving a queue's series the ``agent`` label of its agent type
(a priority band's queue adds a suffix after a dot: ``names.agent_queue``)."""
URGENT_ECHO = names.agent_queue("echo", len(BANDS) - 1)
PRODUCTION_AGENTS = f'agent!~"{"|".join(map(re.escape, names.DEMO_AGENTS))}"'
"""Every agent type but the demo ones that fail or stall on purpose."""
API_ROUTES = 'route=~"/v1/.+"'
MEMORY_LIMIT_BYTES = 1024 * 2**20
"""The memory a process may use before it is killed (the container limit in the stack)."""
LLM_DAILY_BUDGET_USD = LlmSettings().daily_budget_usd
"""The model spend a day may cost (``ORCH_LLM_DAILY_BUDGET_USD``'s default)."""
FAST_SPEND = 10
"""The fast window's pace, as a multiple of the daily budget: the day's budget in 2.4 hours."""
BACKUP_MAX_AGE_S = DatabaseSettings().backup_max_age_s
"""How old the newest verified backup may be (``ORCH_BACKUP_MAX_AGE_S``'s default)."""

DATABASE_ANSWERS = f"(min({s(m.DB_UP)}) == 1)"
"""Pool alerts hold only while PostgreSQL answers: during an outage requests wait for the pool
because the server is gone (DatabaseDown says so), and after it they would page for that
backlog the moment the inhibition lifts."""

PSQL = "{psql}"
"""psql on the deployment's database (the runbook fills in its URL, without the password)."""
ESCALATE_P1 = ("Page the secondary on-call after 15 minutes without mitigation; the incident "
               "commander owns communication.")
ESCALATE_P2 = "Open a ticket for the owning team; escalate to P1 if it lasts over an hour."

THRESHOLDS: tuple[Threshold, ...] = (
    Threshold(
        alert="ApiDown", metrics=(m.UP,), scenario=sc.API_DOWN, panel=panels.API_TARGETS,
        expr=f'(sum({s(m.UP)}{{job="{API_JOB}"}}) or vector(0)) < {{value}}',
        critical=1, for_="1m",
        summary="The orchestrator API is down",
        description="Fewer than {value} API scrape targets have answered for {for_}: clients"
                    " cannot submit or read tasks.",
        runbook=Runbook(
            meaning="Prometheus cannot scrape any API process.",
            impact="No task can be submitted or read; agents keep working on queued tasks.",
            diagnose=("curl -sS --max-time 5 {api}/health/ready",
                      "orchestrator stack status",
                      "tail -n 30 {logs}/api.log"),
            mitigate=("Restart the API: orchestrator api (or the api service in the stack).",
                      "If it exits at start, its single error line names the dependency that"
                      " does not answer; fix that first."),
            escalate=ESCALATE_P1),
        test_series={f'{s(m.UP)}{{job="{API_JOB}",instance="api:8000"}}': ("0x60", "1x60")}),
    Threshold(
        alert="ApiLatencyHigh", metrics=(m.HTTP_REQUEST_DURATION,), scenario=sc.HIGH_LATENCY,
        panel=panels.API_LATENCY, unit="s", warning=0.5, critical=2.0, for_="5m",
        expr=(f"histogram_quantile(0.99, sum by (le) (rate("
              f"{s(m.HTTP_REQUEST_DURATION, '_bucket')}{{{API_ROUTES}}}[5m]))) > {{value}}"),
        summary="API p99 latency above {value}",
        description="The 99th percentile of /v1 request latency has been above {value} for"
                    " {for_}.",
        runbook=Runbook(
            meaning="Requests are slow for at least 1% of clients.",
            impact="Clients time out or retry; submissions back up.",
            diagnose=("orchestrator tasks --limit 20",
                      f"{PSQL} -c \"SELECT state, count(*) FROM pg_stat_activity GROUP BY 1\"",
                      "curl -sS {api}/metrics | grep -E '^orchestrator_db_pool'"),
            mitigate=("Check the database pool panels: a full pool makes every request wait.",
                      "Add API workers (ORCH_API_WORKERS) if CPU-bound; shed load at the edge."),
            escalate=ESCALATE_P2),
        test_series={
            f'{s(m.HTTP_REQUEST_DURATION, "_bucket")}{{route="/v1/tasks",le="0.25"}}':
                ("0+0x60", "0+60x60"),
            f'{s(m.HTTP_REQUEST_DURATION, "_bucket")}{{route="/v1/tasks",le="5"}}':
                ("0+60x60", "0+60x60"),
            f'{s(m.HTTP_REQUEST_DURATION, "_bucket")}{{route="/v1/tasks",le="+Inf"}}':
                ("0+60x60", "0+60x60")}),
    Threshold(
        alert="ApiErrorRatioHigh", metrics=(m.HTTP_REQUESTS,), scenario=sc.HIGH_ERROR_RATE,
        panel=panels.API_ERRORS, unit="%", warning=0.01, critical=0.05, for_="5m",
        expr=(f'sum(rate({s(m.HTTP_REQUESTS)}{{status=~"5.."}}[5m])) / '
              f"sum(rate({s(m.HTTP_REQUESTS)}[5m])) > {{value}}"),
        summary="More than {value} of API requests fail with 5xx",
        description="Over {value} of API requests have answered 5xx for {for_}.",
        runbook=Runbook(
            meaning="The API answers server errors: a dependency is failing or a bug fires.",
            impact="Clients get errors; retries add load (cascading failure risk).",
            diagnose=("curl -sS --max-time 5 {api}/health/ready",
                      "grep '\"level\":\"ERROR\"' {logs}/api.log | tail -n 20",
                      "orchestrator tasks --status dead --limit 20"),
            mitigate=("If /health/ready names a dependency, follow its runbook section.",
                      "Roll back the last deploy if errors started with it."),
            escalate=ESCALATE_P2),
        test_series={
            f'{s(m.HTTP_REQUESTS)}{{route="/v1/tasks",status="500"}}': ("0+30x60", "0+0x60"),
            f'{s(m.HTTP_REQUESTS)}{{route="/v1/tasks",status="202"}}': ("0+60x60", "0+60x60")}),
    Threshold(
        alert="DatabaseDown", metrics=(m.DB_UP,), scenario=sc.DATABASE_DOWN,
        panel=panels.DB_UP, critical=1, for_="1m",
        expr=f"min({s(m.DB_UP)}) < {{value}}",
        summary="PostgreSQL is unreachable",
        description="The lowest db_up over all processes has been below {value} for {for_}:"
                    " a process cannot query PostgreSQL.",
        runbook=Runbook(
            meaning="The source of truth is unavailable.",
            impact="Submissions fail with 503; workers hold their messages and retry.",
            diagnose=("{pg_isready}",
                      f"{PSQL} -c \"SELECT pg_postmaster_start_time(), now()\"",
                      "curl -sS --max-time 5 {api}/health/ready"),
            mitigate=("Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql)"
                      " main start",
                      "Nothing is lost: accepted tasks are committed, unacked messages wait."),
            escalate=ESCALATE_P1),
        test_series={f'{s(m.DB_UP)}{{job="{API_JOB}"}}': ("0x60", "1x60")}),
    Threshold(
        alert="DbPoolUsageHigh", metrics=(m.DB_POOL_USAGE, m.DB_UP),
        scenario=sc.POOL_EXHAUSTION,
        panel=panels.DB_POOL_USAGE, unit="%", warning=0.8, critical=0.95, for_="5m",
        expr=f"max({s(m.DB_POOL_USAGE)}) > {{value}} and on () {DATABASE_ANSWERS}",
        summary="Database pool usage above {value}",
        description="A process has used more than {value} of its database pool for {for_}.",
        runbook=Runbook(
            meaning="Almost every pooled connection is busy.",
            impact="New queries soon wait for a connection; latency rises.",
            diagnose=(f"{PSQL} -c \"SELECT application_name, state, count(*) FROM"
                      " pg_stat_activity GROUP BY 1, 2 ORDER BY 3 DESC\"",
                      f"{PSQL} -c \"SELECT pid, now() - query_start AS age, query FROM"
                      " pg_stat_activity WHERE state <> 'idle' ORDER BY age DESC LIMIT 10\""),
            mitigate=("Cancel runaway queries (SELECT pg_cancel_backend(pid)).",
                      "Raise ORCH_DB_POOL_MAX within max_connections, or add processes."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.DB_POOL_USAGE)}{{job="{API_JOB}"}}': ("0.99x60", "0.1x60"),
                     f'{s(m.DB_UP)}{{job="{API_JOB}"}}': ("1x60", "1x60")},
        quiet_series={f'{s(m.DB_POOL_USAGE)}{{job="{API_JOB}"}}': "0.99x60",
                      f'{s(m.DB_UP)}{{job="{API_JOB}"}}': "0x60"}),
    Threshold(
        alert="DbPoolExhausted", metrics=(m.DB_POOL_WAITING, m.DB_UP),
        scenario=sc.POOL_EXHAUSTION,
        panel=panels.DB_POOL_WAITING, critical=0, for_="2m",
        expr=f"max({s(m.DB_POOL_WAITING)}) > {{value}} and on () {DATABASE_ANSWERS}",
        summary="Requests are waiting for database connections",
        description="More than {value} requests have waited for a pool connection for {for_}.",
        runbook=Runbook(
            meaning="The pool is exhausted: requests queue for a connection.",
            impact="API requests slow down and time out (503 after the pool timeout).",
            diagnose=(f"{PSQL} -c \"SELECT state, wait_event_type, count(*) FROM"
                      " pg_stat_activity GROUP BY 1, 2\"",
                      "curl -sS {api}/metrics | grep -E '^orchestrator_db_pool'"),
            mitigate=("Find and cancel long transactions; check for lock waits.",
                      "Restart the affected process if connections leaked."),
            escalate=ESCALATE_P1),
        test_series={f'{s(m.DB_POOL_WAITING)}{{job="{API_JOB}"}}': ("3x60", "0x60"),
                     f'{s(m.DB_UP)}{{job="{API_JOB}"}}': ("1x60", "1x60")},
        quiet_series={f'{s(m.DB_POOL_WAITING)}{{job="{API_JOB}"}}': "3x60",
                      f'{s(m.DB_UP)}{{job="{API_JOB}"}}': "0x60"}),
    Threshold(
        alert="RabbitmqDown", metrics=(m.BROKER_UP,), scenario=sc.BROKER_DOWN,
        panel=panels.BROKER_UP, critical=1, for_="1m",
        expr=f"min({s(m.BROKER_UP)}) < {{value}}",
        summary="RabbitMQ is unreachable",
        description="The lowest broker_up over all processes has been below {value} for"
                    " {for_}: a process has no RabbitMQ connection.",
        runbook=Runbook(
            meaning="The broker is down or unreachable.",
            impact="Submissions are accepted and kept in PostgreSQL (outbox) but nothing runs.",
            diagnose=("{rabbitmqctl} status",
                      "{rabbitmq_diagnostics} -q check_port_connectivity",
                      "orchestrator tasks --status queued --limit 20"),
            mitigate=("Start it: rabbitmq-server -detached && rabbitmqctl await_startup",
                      "The outbox relay publishes the backlog by itself once it is back."),
            escalate=ESCALATE_P1),
        test_series={f'{s(m.BROKER_UP)}{{job="{AGENT_JOB}"}}': ("0x60", "1x60")}),
    Threshold(
        alert="RabbitmqNodeDown", metrics=(m.UP,), scenario=sc.BROKER_DOWN,
        panel=panels.RABBITMQ_NODES_DOWN, warning=1, for_="1m",
        expr=f'count({s(m.UP)}{{job="{RABBITMQ_JOB}"}} == 0) >= {{value}}',
        summary="A RabbitMQ node is down",
        description="{value} or more RabbitMQ nodes have not answered Prometheus for {for_}:"
                    " the cluster serves on the others while each quorum queue keeps a"
                    " majority of its members.",
        runbook=Runbook(
            meaning="A node of the RabbitMQ cluster stopped, crashed or is cut off. Clients on"
                    " it have moved to the other nodes (ORCH_AMQP_URL lists them); its quorum"
                    " queue members are offline and leaders moved.",
            impact="None while the other nodes keep a majority of every queue's members; one"
                   " more lost node can take queues offline (QuorumQueueMembersOffline says"
                   " which).",
            diagnose=("{rabbitmqctl} cluster_status",
                      "{rabbitmqctl} list_queues -p {vhost} name leader members online",
                      "orchestrator stats"),
            mitigate=("Start the node again (rabbitmq-server -detached): it rejoins and its"
                      " members catch up by themselves.",
                      "If its disk is lost for good, remove it (rabbitmqctl forget_cluster_node"
                      " NODE) and grow the queues onto a new one (rabbitmq-queues grow NODE"
                      " all)."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.UP)}{{job="{RABBITMQ_JOB}",instance="rabbit-1"}}': ("0x60", "1x60"),
                     f'{s(m.UP)}{{job="{RABBITMQ_JOB}",instance="rabbit-2"}}': ("1x60", "1x60")}),
    Threshold(
        alert="QuorumQueueMembersOffline", metrics=(m.RABBITMQ_RAFT_TERM,),
        scenario=sc.BROKER_DOWN, panel=panels.QUORUM_MEMBERS, warning=1, critical=0.51,
        for_="1m",
        expr=(f"count by (vhost, queue) ({s(m.RABBITMQ_RAFT_TERM)}) / on (vhost, queue)"
              f" max_over_time((count by (vhost, queue) ({s(m.RABBITMQ_RAFT_TERM)}))[1h:])"
              " < {value}"),
        summary="Quorum queue {{ $labels.queue }} has members offline",
        description="{{ $labels.queue }} ({{ $labels.vhost }}) has had fewer than {value} of"
                    " its members online for {for_} (of the most it had over the last hour;"
                    " critical: no majority, the queue takes and delivers nothing).",
        unit="%", fold=("queue", "vhost"),
        runbook=Runbook(
            meaning="Members of quorum queues are on nodes that are down or cut off. With a"
                    " majority online the queue works and re-replicates when the node returns;"
                    " without one it accepts and delivers nothing.",
            impact="Warning: none yet, but less redundancy. Critical: tasks of the affected"
                   " agent types wait in the outbox (publishes are not confirmed) and nothing"
                   " is delivered.",
            diagnose=("{rabbitmqctl} list_queues -p {vhost} name leader members online",
                      "{rabbitmqctl} cluster_status",
                      "orchestrator stats"),
            mitigate=("Bring the nodes back (rabbitmq-server -detached); the members catch up"
                      " by themselves.",
                      "A member removed for good keeps this warning for up to an hour (the"
                      " share is of the most seen in an hour): grow the queue onto another node"
                      " (rabbitmq-queues grow NODE all)."),
            escalate=ESCALATE_P1),
        test_labels={"vhost": "/", "queue": names.agent_queue("echo")},
        test_series={
            f'{s(m.RABBITMQ_RAFT_TERM)}{{instance="rabbit-{n}",vhost="/",'
            f'queue="{names.agent_queue("echo")}"}}': ("1x60" if n == 1 else "1x20 _x40",
                                                      "1x60")
            for n in (1, 2, 3)}),
    Threshold(
        alert="RedisDown", metrics=(m.REDIS_UP,), scenario=sc.REDIS_DOWN,
        panel=panels.REDIS_UP, warning=1, for_="2m",
        expr=f"min({s(m.REDIS_UP)}) < {{value}}",
        summary="Redis is unreachable",
        description="The lowest redis_up over all processes has been below {value} for"
                    " {for_}; reads are served from PostgreSQL.",
        runbook=Runbook(
            meaning="The status cache and heartbeat store is down.",
            impact="Reads hit PostgreSQL (more load); everything keeps working (degraded).",
            diagnose=("{redis_cli} ping",
                      "curl -sS --max-time 5 {api}/health/ready",
                      "orchestrator agents"),
            mitigate=("Start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379",
                      "Watch the database pool: cache misses raise its load."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.REDIS_UP)}{{job="{API_JOB}"}}': ("0x60", "1x60")}),
    Threshold(
        alert="QueueDepthHigh", metrics=(m.QUEUE_MESSAGES,), scenario=sc.PROCESSING_STALLED,
        panel=panels.QUEUE_DEPTH, warning=1000, critical=10000, for_="10m",
        expr=f"max by (queue) ({s(m.QUEUE_MESSAGES)}{{{AGENT_QUEUES}}}) > {{value}}",
        summary="Queue {{ $labels.queue }} holds more than {value} messages",
        description="More than {value} messages have waited in {{ $labels.queue }} for {for_}.",
        runbook=Runbook(
            meaning="Work arrives faster than the agents finish it.",
            impact="Queue wait grows; end-to-end latency SLO burns.",
            diagnose=("{rabbitmqctl} list_queues -p {vhost} name messages consumers",
                      "orchestrator agents",
                      "orchestrator tasks --status running --limit 20"),
            mitigate=("Start more agent processes for that agent type"
                      " (orchestrator agent --agents NAME).",
                      "Check the agent's failure ratio: retries multiply the work."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.QUEUE_MESSAGES)}{{queue="orch.agent.echo"}}': ("20000x60", "5x60")},
        test_labels={"queue": "orch.agent.echo"}),
    Threshold(
        alert="QueueWithoutConsumers",
        metrics=(m.QUEUE_CONSUMERS, m.QUEUE_MESSAGES, m.AGENTS_LIVE),
        scenario=sc.AGENT_NOT_RESPONDING, panel=panels.QUEUE_CONSUMERS, critical=1, for_="5m",
        expr=(f"(label_replace(max by (queue) ({s(m.QUEUE_CONSUMERS)}{{{AGENT_QUEUES}}}),"
              f" {QUEUE_TO_AGENT}) < {{value}})"
              f" and on (queue) (max by (queue) ({s(m.QUEUE_MESSAGES)}) > 0)"
              f" and on (agent) (max by (agent) ({s(m.AGENTS_LIVE)}) > 0)"),
        summary="Queue {{ $labels.queue }} has messages and no consumer",
        description="{{ $labels.queue }} has had waiting messages and fewer than {value}"
                    " consumers for {for_} while {{ $labels.agent }} workers send heartbeats:"
                    " they run but do not consume.",
        fold=("queue", "agent"),
        runbook=Runbook(
            meaning="Workers of this agent type are alive (heartbeats) but none consumes its"
                    " queue: a lost AMQP channel, a consumer that crashed, a worker stuck"
                    " starting. (No live worker at all is AgentsMissing.)",
            impact="Every task for that agent waits; nothing runs.",
            diagnose=("orchestrator agents",
                      "{rabbitmqctl} list_consumers -p {vhost}",
                      "{rabbitmqctl} list_queues -p {vhost} name messages consumers"),
            mitigate=("Start an agent for it: orchestrator agent --agents NAME.",
                      "If workers run but do not consume, look for a crash loop in their logs."),
            escalate=ESCALATE_P1),
        # an urgent band's queue: its series maps to the agent through the band suffix
        test_series={f'{s(m.QUEUE_CONSUMERS)}{{queue="{URGENT_ECHO}"}}': ("0x60", "1x60"),
                     f'{s(m.QUEUE_MESSAGES)}{{queue="{URGENT_ECHO}"}}': ("5x60", "5x60"),
                     f'{s(m.AGENTS_LIVE)}{{agent="echo"}}': ("1x60", "1x60")},
        quiet_series={f'{s(m.QUEUE_CONSUMERS)}{{queue="{URGENT_ECHO}"}}': "0x60",
                      f'{s(m.QUEUE_MESSAGES)}{{queue="{URGENT_ECHO}"}}': "5x60",
                      f'{s(m.AGENTS_LIVE)}{{agent="echo"}}': "0x60"},
        test_labels={"queue": URGENT_ECHO, "agent": "echo"}),
    Threshold(
        alert="ScheduleNotFiring", metrics=(m.SCHEDULE_OVERDUE,),
        scenario=sc.PROCESSING_STALLED, panel=panels.SCHEDULES_OVERDUE, unit="s",
        warning=120, for_="2m",
        expr=f"max({s(m.SCHEDULE_OVERDUE)}) > {{value}}",
        summary="A recurring schedule has not fired for {value} past its due time",
        description="The most overdue active schedule should have fired more than {value} ago"
                    " (for {for_}): its tasks are not being created.",
        runbook=Runbook(
            meaning="No API process fires the schedules (every API process runs the scheduler,"
                    " within a second of each due time), or its passes fail: the database"
                    " refuses them, or a pass is stuck behind a lock.",
            impact="The periodic work of that schedule (reports, syncs, sweeps) is not done;"
                   " with policy skip, the due times missed meanwhile are not made up.",
            diagnose=("orchestrator schedule list",
                      "curl -sS --max-time 5 {api}/health/ready",
                      "grep 'scheduler pass failed' {logs}/api.log | tail -n 5",
                      f"{PSQL} -c \"SELECT name, next_due_at, paused FROM schedules WHERE NOT"
                      " paused ORDER BY next_due_at LIMIT 5\""),
            mitigate=("Start the API if none runs (orchestrator up, or orchestrator api): it"
                      " fires what is due at once; a schedule whose policy is catch_up makes"
                      " up every missed due time, skip only the last one within"
                      " ORCH_SCHEDULE_GRACE_S.",
                      "If the database refuses the passes, see DatabaseDown and"
                      " DatabasePoolExhausted.",
                      "To stop one schedule on purpose: orchestrator schedule pause NAME (a"
                      " paused schedule is not late)."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.SCHEDULE_OVERDUE)}{{job="{API_JOB}"}}': ("600x60", "0x60")}),
    Threshold(
        alert="ModelSpendOverBudget", metrics=(m.MODEL_COST,),
        scenario=sc.RESOURCE_EXHAUSTION, panel=panels.MODEL_SPEND,
        warning=LLM_DAILY_BUDGET_USD, warning_setting="llm.daily_budget_usd", for_="5m",
        expr=(f"((sum(rate({s(m.MODEL_COST)}[1h])) * 86400 > {FAST_SPEND} * {{value}})"
              f" and (sum(rate({s(m.MODEL_COST)}[5m])) * 86400 > {FAST_SPEND} * {{value}}))"
              f" or ((sum(rate({s(m.MODEL_COST)}[6h])) * 86400 > {{value}})"
              f" and (sum(rate({s(m.MODEL_COST)}[30m])) * 86400 > {{value}}))"),
        summary="Model spend is on pace to pass the daily budget of {value} USD",
        description="The language-model calls cost, at their pace over the last hour (and"
                    f" five minutes), more than {FAST_SPEND:g} times the daily budget of"
                    " {value} USD a day, or over six hours (and thirty minutes) more than the"
                    " budget itself.",
        runbook=Runbook(
            meaning="The agents call models faster or with larger prompts than the budget"
                    " (ORCH_LLM_DAILY_BUDGET_USD; the rules use its default) allows: a burst"
                    " of work, a loop that retries a model call, a prompt that grew, or a"
                    " pricier model.",
            impact="Money: at the fast pace the day's budget is gone in a few hours. Nothing"
                   " is down.",
            diagnose=("curl -sS {agent_metrics}/metrics | grep -E"
                      " '^orchestrator_model_(cost_usd|input_tokens|output_tokens)_total'",
                      "orchestrator report --since 6h",
                      "orchestrator tasks --agent llm --limit 20"),
            mitigate=("Bound the spend: ORCH_AGENT_LIMITS=llm:tokens=N/min (or"
                      " concurrency=N) on the agents, restarted; tasks wait instead of calling.",
                      "Pause the schedules that feed it: orchestrator schedule pause NAME.",
                      "Find the tasks that cost most: " + PSQL + " -c \"SELECT id, agent,"
                      " tokens_in, tokens_out, cost_usd FROM tasks ORDER BY cost_usd DESC"
                      " LIMIT 10\""),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.MODEL_COST)}{{job="{AGENT_JOB}",agent="llm",model="gpt-4o-mini"}}':
                     ("0+1x120", "0x120")}),
    Threshold(
        alert="TaskProcessingStalled", metrics=(m.TASKS_STARTED, m.QUEUE_MESSAGES),
        scenario=sc.PROCESSING_STALLED, panel=panels.THROUGHPUT, warning=0, for_="10m",
        expr=(f"(sum(rate({s(m.TASKS_STARTED)}[10m])) or vector(0)) <= {{value}}"
              f" and on () (sum({s(m.QUEUE_MESSAGES)}{{{AGENT_QUEUES}}}) > 0)"),
        summary="Tasks are waiting but none has started",
        description="Messages wait in the agent queues and tasks have started at no more"
                    " than {value}/s for {for_}.",
        runbook=Runbook(
            meaning="The pipeline is stuck: a backlog and no progress.",
            impact="Nothing completes; every SLO burns.",
            diagnose=("orchestrator agents",
                      "{rabbitmqctl} list_queues -p {vhost} name messages consumers",
                      "orchestrator tasks --status running --limit 20"),
            mitigate=("Restart the agents; check RabbitMQ and PostgreSQL health first.",
                      "A poison message shows as repeated redeliveries in orchestrator events."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.TASKS_STARTED)}{{agent="echo"}}': ("0+0x60", "0+60x60"),
                     f'{s(m.QUEUE_MESSAGES)}{{queue="orch.agent.echo"}}': ("10x60", "10x60")}),
    Threshold(
        alert="OldestQueuedTaskTooOld", metrics=(m.OLDEST_QUEUED_AGE,),
        scenario=sc.PROCESSING_STALLED, panel=panels.OLDEST_QUEUED, unit="s",
        warning=300, critical=1800, for_="5m",
        expr=f"max by (agent) ({s(m.OLDEST_QUEUED_AGE)}) > {{value}}",
        summary="A {{ $labels.agent }} task has waited more than {value}",
        description="The oldest due {{ $labels.agent }} task has waited more than {value} to"
                    " start, for {for_}.",
        runbook=Runbook(
            meaning="Tasks wait too long before a worker starts them.",
            impact="Queue-wait SLO burns; clients see stale results.",
            diagnose=("orchestrator tasks --status queued --limit 20", "orchestrator agents",
                      f"{PSQL} -c \"SELECT agent, status, count(*), min(available_at) FROM tasks"
                      " WHERE status IN ('queued', 'retrying') GROUP BY 1, 2\""),
            mitigate=("Add agent processes for the agent type.",
                      "If tasks are unpublished (outbox), see OutboxBacklog."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.OLDEST_QUEUED_AGE)}{{agent="echo"}}': ("4000x60", "1x60")},
        test_labels={"agent": "echo"}),
    Threshold(
        alert="DeadLetterQueueGrowing", metrics=(m.DEAD_LETTERS_OPEN,),
        scenario=sc.DEAD_LETTER_GROWTH, panel=panels.DEAD_LETTERS, warning=10, for_="5m",
        expr=f"max by (agent) (delta({s(m.DEAD_LETTERS_OPEN)}[15m])) > {{value}}",
        summary="{{ $labels.agent }} dead letters grew by more than {value} in 15 minutes",
        description="More than {value} {{ $labels.agent }} dead letters were recorded and not"
                    " replayed in 15 minutes (for {for_}).",
        runbook=Runbook(
            meaning="Tasks exhaust their retries or fail non-retryably, or the broker gives up"
                    " on their messages (delivery limit, malformed). Every dead letter is"
                    " recorded in PostgreSQL (the dead-letter queue is only its transport);"
                    " a replay takes the count down again.",
            impact="Those tasks will not complete unless replayed.",
            diagnose=("orchestrator dlq list --agent AGENT",
                      "orchestrator events TASK_ID"),
            mitigate=("Read the errors and reasons (orchestrator dlq show ID prints one dead"
                      " letter with its headers and body).",
                      "Fix the cause (agent bug, bad input, dependency), then replay: orchestrator"
                      " dlq replay --all --agent AGENT --dry-run, then without --dry-run.",
                      "Orphans (no task) cannot be replayed: inspect them with dlq show, drop"
                      " them with orchestrator dlq purge --older-than AGE."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.DEAD_LETTERS_OPEN)}{{agent="echo"}}': ("0+5x60", "3x60")},
        test_labels={"agent": "echo"}),
    Threshold(
        alert="TaskFailureRatioHigh", metrics=(m.TASKS_FAILED, m.TASKS_STARTED),
        scenario=sc.HIGH_ERROR_RATE, panel=panels.FAILURE_RATIO, unit="%",
        warning=0.1, critical=0.5, for_="10m",
        expr=(f"sum by (agent) (rate({s(m.TASKS_FAILED)}{{{PRODUCTION_AGENTS}}}[10m])) /"
              f" sum by (agent) (rate({s(m.TASKS_STARTED)}{{{PRODUCTION_AGENTS}}}[10m]))"
              " > {value}"),
        summary="More than {value} of {{ $labels.agent }} attempts fail",
        description="Over {value} of {{ $labels.agent }} task attempts have failed for {for_}.",
        runbook=Runbook(
            meaning="An agent type fails often (bug, bad inputs, a failing dependency). The"
                    " demo agents that fail on purpose (" + ", ".join(names.DEMO_AGENTS)
                    + ") are left out.",
            impact="Retries add load; tasks go dead; the task-success SLO burns.",
            diagnose=("orchestrator tasks --agent AGENT --status retrying --limit 20",
                      "orchestrator events TASK_ID"),
            mitigate=("Stop the bleeding: roll back the agent or its dependency.",
                      "Requeue dead tasks after the fix: orchestrator retry TASK_ID."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.TASKS_FAILED)}{{agent="summarize"}}': ("0+60x60", "0+1x60"),
                     f'{s(m.TASKS_STARTED)}{{agent="summarize"}}': ("0+60x60", "0+60x60")},
        quiet_series={f'{s(m.TASKS_FAILED)}{{agent="fail"}}': "0+60x60",
                      f'{s(m.TASKS_STARTED)}{{agent="fail"}}': "0+60x60"},
        test_labels={"agent": "summarize"}),
    Threshold(
        alert="AgentsMissing", metrics=(m.AGENTS_LIVE,), scenario=sc.AGENT_NOT_RESPONDING,
        panel=panels.AGENTS_LIVE, critical=1, for_="2m",
        expr=f"max by (agent) ({s(m.AGENTS_LIVE)}) < {{value}}",
        summary="No live {{ $labels.agent }} worker",
        description="Fewer than {value} {{ $labels.agent }} workers have sent a heartbeat"
                    " for {for_}. An agent type counts once a worker for it has started (or"
                    " it is in ORCH_DEPLOYED_AGENTS).",
        fold=("agent",),
        runbook=Runbook(
            meaning="No worker serves this agent type (stopped, crashed or hung). One page"
                    " lists every agent type the missing workers served.",
            impact="Its tasks queue up and never run.",
            diagnose=("orchestrator agents",
                      "orchestrator stack status",
                      "{rabbitmqctl} list_consumers -p {vhost}"),
            mitigate=("Start one: orchestrator agent --agents NAME.",
                      "If it crashes at start, its error line names the cause.",
                      "If the agent type was taken out of service on purpose: orchestrator"
                      " agents retire NAME (it counts again once a worker for it starts)."),
            escalate=ESCALATE_P1),
        test_series={f'{s(m.AGENTS_LIVE)}{{agent="echo"}}': ("0x60", "2x60")},
        test_labels={"agent": "echo"}),
    Threshold(
        alert="AgentHeartbeatStale", metrics=(m.HEARTBEAT_AGE,),
        scenario=sc.AGENT_NOT_RESPONDING, panel=panels.HEARTBEAT_AGE, unit="s",
        warning=60, for_="2m",
        expr=f"max by (agent) ({s(m.HEARTBEAT_AGE)}) > {{value}}",
        summary="A {{ $labels.agent }} worker stopped sending heartbeats",
        description="A {{ $labels.agent }} worker's last heartbeat is older than {value}"
                    " (for {for_}): it died without a clean shutdown or hangs.",
        runbook=Runbook(
            meaning="A worker vanished without deregistering, or its event loop is blocked.",
            impact="Its in-flight tasks are redelivered to other workers once its connection"
                   " drops.",
            diagnose=("orchestrator agents",
                      f"{PSQL} -c \"SELECT worker_id, agents, last_seen FROM workers"
                      " ORDER BY last_seen\""),
            mitigate=("Restart the worker; if it hangs, take a py-spy dump first.",),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.HEARTBEAT_AGE)}{{agent="echo"}}': ("300x60", "2x60")},
        fold=("agent",),
        test_labels={"agent": "echo"}),
    Threshold(
        alert="OutboxBacklog", metrics=(m.OUTBOX_OLDEST_AGE,), scenario=sc.MESSAGE_LOSS,
        panel=panels.OUTBOX_BACKLOG, unit="s", warning=60, critical=600, for_="2m",
        expr=f"max({s(m.OUTBOX_OLDEST_AGE)}) > {{value}}",
        summary="Accepted tasks unpublished for more than {value}",
        description="A committed task has waited more than {value} for the broker to confirm"
                    " its message (for {for_}).",
        runbook=Runbook(
            meaning="The outbox relay cannot publish: broker down, blocked or refusing.",
            impact="Accepted tasks do not run (they are safe in PostgreSQL).",
            diagnose=("{rabbitmqctl} status",
                      f"{PSQL} -c \"SELECT count(*), min(created_at) FROM tasks WHERE"
                      " published_at IS NULL\"",
                      "curl -sS --max-time 5 {api}/health/ready"),
            mitigate=("Fix the broker (see RabbitmqDown); the relay catches up by itself.",),
            escalate=ESCALATE_P1),
        test_series={s(m.OUTBOX_OLDEST_AGE): ("900x60", "0x60")}),
    Threshold(
        alert="PublishFailing", metrics=(m.OUTBOX_PUBLISH_FAILURES,), scenario=sc.MESSAGE_LOSS,
        panel=panels.PUBLISH_FAILURES, warning=0, for_="5m",
        expr=f"sum(rate({s(m.OUTBOX_PUBLISH_FAILURES)}[5m])) > {{value}}",
        summary="The broker refuses or drops published messages",
        description="Publishes have failed (no confirm) at more than {value}/s for {for_};"
                    " they are retried from the outbox.",
        runbook=Runbook(
            meaning="Messages are not confirmed by RabbitMQ.",
            impact="Tasks wait in the outbox; risk of loss if the database also fails.",
            diagnose=("{rabbitmqctl} status",
                      "{rabbitmqctl} list_queues -p {vhost} name messages",
                      "{rabbitmq_diagnostics} -q alarms"),
            mitigate=("Clear memory or disk alarms on the broker; check queue limits.",),
            escalate=ESCALATE_P2),
        test_series={s(m.OUTBOX_PUBLISH_FAILURES): ("0+10x60", "0+0x60")}),
    Threshold(
        alert="MessagesLost", metrics=(m.RECONCILED,), scenario=sc.MESSAGE_LOSS,
        panel=panels.RECONCILED, warning=0, critical=50, for_="0m",
        expr=(f'sum by (agent) (increase({s(m.RECONCILED)}{{action="republished"}}[15m]))'
              " > {value}"),
        summary="{{ $labels.agent }} tasks lost their message: more than {value} republished",
        description="In the last 15 minutes the reconciler found more than {value} waiting"
                    " {{ $labels.agent }} tasks whose message the broker no longer held, and"
                    " published them again.",
        runbook=Runbook(
            meaning="Messages vanished from RabbitMQ while their tasks still waited: a purged"
                    " or deleted queue, a broker that lost its data, a policy that drops"
                    " messages (max-length, TTL). PostgreSQL is the record, so the reconciler"
                    " has already published those tasks again.",
            impact="The tasks ran late (by up to ORCH_RECONCILE_AFTER_S plus two passes); none"
                    " is lost. A broker that keeps losing messages will lose them again.",
            diagnose=("{rabbitmqctl} list_queues -p {vhost} name messages consumers",
                      "{rabbitmqctl} list_policies -p {vhost}",
                      f"{PSQL} -c \"SELECT task_id, at, worker_id FROM task_events WHERE"
                      " kind = 'republished' ORDER BY at DESC LIMIT 20\""),
            mitigate=("Find who purged or deleted the queue (RabbitMQ's log) and stop it; remove"
                      " any max-length or message-TTL policy on the agent queues.",
                      "Nothing to replay by hand: the republished tasks run by themselves."),
            escalate=ESCALATE_P1),
        test_series={f'{s(m.RECONCILED)}{{agent="echo",action="republished"}}':
                         ("0+10x60", "0+0x60")},
        test_labels={"agent": "echo"}),
    Threshold(
        alert="TasksRunningPastTimeout", metrics=(m.RUNNING_PAST_TIMEOUT,),
        scenario=sc.PROCESSING_STALLED, panel=panels.RUNNING_PAST_TIMEOUT, warning=0,
        for_="5m",
        expr=f"max by (agent) ({s(m.RUNNING_PAST_TIMEOUT)}) > {{value}}",
        summary="{{ $labels.agent }} tasks are running past their timeout",
        description="More than {value} {{ $labels.agent }} tasks have been running 10 s"
                    " past their own timeout for {for_}.",
        runbook=Runbook(
            meaning="A worker enforces every task's timeout, so a task still running long"
                    " after it is held by a worker that is hung (stopped, deadlocked, swapping)"
                    " or gone without its broker connection closing.",
            impact="Those tasks make no progress and hold worker slots; with the worker's"
                    " prefetch, more tasks wait behind them.",
            diagnose=("orchestrator tasks --status running --limit 20",
                      "orchestrator agents",
                      f"{PSQL} -c \"SELECT worker_id, count(*), min(started_at) FROM tasks"
                      " WHERE status = 'running' GROUP BY 1\""),
            mitigate=("Restart the worker named in worker_id (SIGTERM; SIGKILL if it does not"
                      " react): its unacked messages return to the queue and run again.",),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.RUNNING_PAST_TIMEOUT)}{{agent="echo"}}': ("3x60", "0x60")},
        test_labels={"agent": "echo"}),
    Threshold(
        alert="DuplicateDeliveriesHigh", metrics=(m.DUPLICATE_DELIVERIES, m.TASKS_STARTED),
        scenario=sc.DUPLICATES, panel=panels.DUPLICATE_RATIO, unit="%", warning=0.05,
        for_="10m",
        expr=(f"sum(rate({s(m.DUPLICATE_DELIVERIES)}[10m])) /"
              f" sum(rate({s(m.TASKS_STARTED)}[10m])) > {{value}}"),
        summary="More than {value} of deliveries are duplicates",
        description="Duplicate deliveries exceed {value} of started tasks for {for_}.",
        runbook=Runbook(
            meaning="Messages are delivered again for tasks already finished or running.",
            impact="Wasted work; a sign of crashing workers or double publishing.",
            diagnose=("orchestrator events TASK_ID",
                      f"{PSQL} -c \"SELECT count(*) FROM task_events WHERE kind ="
                      " 'duplicate_dropped' AND at > now() - interval '1 hour'\""),
            mitigate=("Look for workers restarting in a loop (redeliveries) and relays"
                      " publishing twice.",),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.DUPLICATE_DELIVERIES)}{{agent="echo"}}': ("0+30x60", "0+0x60"),
                     f'{s(m.TASKS_STARTED)}{{agent="echo"}}': ("0+60x60", "0+60x60")}),
    Threshold(
        alert="DataIntegrityCheckFailed", metrics=(m.INTEGRITY_FAILURES,),
        scenario=sc.DATA_CORRUPTION, panel=panels.INTEGRITY, critical=0, for_="0m",
        expr=f"sum(increase({s(m.INTEGRITY_FAILURES)}[10m])) > {{value}}",
        summary="Stored task data failed its integrity check",
        description="More than {value} tasks had an input that no longer matches its checksum"
                    " in the last 10 minutes.",
        runbook=Runbook(
            meaning="Task rows changed after submission (data corruption or a bad manual"
                    " edit).",
            impact="Those tasks are dead and were not run; more rows may be affected.",
            diagnose=("orchestrator tasks --status dead --limit 20",
                      f"{PSQL} -c \"SELECT id, agent, error FROM tasks WHERE error LIKE"
                      " '%checksum%' ORDER BY updated_at DESC LIMIT 20\""),
            mitigate=("Stop manual writes; compare with the last backup; restore affected"
                      " rows and requeue: orchestrator retry TASK_ID.",),
            escalate=ESCALATE_P1),
        test_series={f'{s(m.INTEGRITY_FAILURES)}{{agent="echo"}}': ("0+1x60", "0+0x60")}),
    Threshold(
        alert="BackupNotVerified", metrics=(m.BACKUP_VERIFIED_AGE,),
        scenario=sc.DATA_CORRUPTION, panel=panels.BACKUP_AGE, unit="s",
        warning=BACKUP_MAX_AGE_S, warning_setting="database.backup_max_age_s", for_="15m",
        expr=f"max({s(m.BACKUP_VERIFIED_AGE)}) > {{value}}",
        summary="No backup has passed verification in the last {value}",
        description="The newest backup that orchestrator backup verify restored and checked"
                    " was verified more than {value} ago, or none was and the database was set"
                    " up more than {value} ago (for {for_}).",
        runbook=Runbook(
            meaning="No recent backup is known to restore: none was taken, none was verified,"
                    " or the latest failed its checks (ORCH_BACKUP_MAX_AGE_S; the rules use"
                    " its default). A new database gets as long for its first one.",
            impact="Nothing is down. But after data corruption or loss (scenario 8) there is"
                   " no known-good copy to restore from: a backup that was never restored may"
                   " not restore.",
            diagnose=("orchestrator backup status",
                      f"{PSQL} -c \"SELECT file_name, created_at, verified_at FROM backups"
                      " ORDER BY created_at DESC LIMIT 5\""),
            mitigate=("Take one and verify it: orchestrator backup create prints the dump's"
                      " path; orchestrator backup verify PATH restores it into a scratch"
                      " database, checks it and records it (the alert resolves).",
                      "A failing check names the problem: checksum (the file is damaged: take"
                      " a new one), task inputs or events (the data was already inconsistent:"
                      " see DataIntegrityCheckFailed).",
                      "Run both daily (cron) so the newest verified backup stays younger than"
                      " ORCH_BACKUP_MAX_AGE_S."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.BACKUP_VERIFIED_AGE)}{{job="{API_JOB}"}}': ("100000x60", "3600x60")}),
    Threshold(
        alert="ProcessMemoryGrowing", metrics=(m.PROCESS_RESIDENT_MEMORY, m.PROCESS_START_TIME),
        scenario=sc.MEMORY_LEAK, panel=panels.MEMORY, unit="bytes",
        warning=MEMORY_LIMIT_BYTES, for_="15m",
        expr=(f'predict_linear({s(m.PROCESS_RESIDENT_MEMORY)}{{job=~"{ORCHESTRATOR_JOBS}"}}'
              f"[30m], 4 * 3600) > {{value}}"
              # a process warming up grows too: judge the trend only after a full window
              f" and on (job, instance) (time() - {s(m.PROCESS_START_TIME)} > 1200)"),
        summary="{{ $labels.job }} memory will reach {value} within 4 hours",
        description="At its growth over the last 30 minutes, {{ $labels.instance }} reaches"
                    " {value} within 4 hours (trend held for {for_}).",
        runbook=Runbook(
            meaning="Memory grows steadily: a leak.",
            impact="The process will be OOM-killed; its in-flight tasks are redelivered.",
            diagnose=("orchestrator stack status",
                      "curl -sS {api}/metrics | grep -E '^process_resident_memory_bytes'"),
            mitigate=("Restart the process in a quiet moment (SIGTERM drains it).",
                      "Capture a heap profile (tracemalloc) before restarting if possible."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.PROCESS_RESIDENT_MEMORY)}{{job="{AGENT_JOB}",instance="a:9101"}}':
                         ("100000000+5000000x60", "100000000x60"),
                     f'{s(m.PROCESS_START_TIME)}{{job="{AGENT_JOB}",instance="a:9101"}}':
                         ("0x60", "0x60")},
        quiet_series={  # started 40 minutes in: still warming up at the evaluation
            f'{s(m.PROCESS_RESIDENT_MEMORY)}{{job="{AGENT_JOB}",instance="a:9101"}}':
                "100000000+5000000x60",
            f'{s(m.PROCESS_START_TIME)}{{job="{AGENT_JOB}",instance="a:9101"}}': "2400x60"},
        test_labels={"job": AGENT_JOB, "instance": "a:9101"}),
    Threshold(
        alert="ProcessMemoryHigh", metrics=(m.PROCESS_RESIDENT_MEMORY,),
        scenario=sc.MEMORY_LEAK, panel=panels.MEMORY, unit="bytes",
        warning=0.8 * MEMORY_LIMIT_BYTES, for_="10m",
        expr=(f'{s(m.PROCESS_RESIDENT_MEMORY)}{{job=~"{ORCHESTRATOR_JOBS}"}}'
              " > {value}"),
        summary="{{ $labels.instance }} uses more than {value}",
        description="{{ $labels.instance }} has used more than {value} of memory for {for_}.",
        runbook=Runbook(
            meaning="A process is close to its memory limit.",
            impact="OOM kill soon; in-flight tasks are redelivered.",
            diagnose=("orchestrator stack status",),
            mitigate=("Restart it gracefully (SIGTERM); lower ORCH_CONCURRENCY if tasks are"
                      " large.",),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.PROCESS_RESIDENT_MEMORY)}{{job="{AGENT_JOB}",instance="a:9101"}}':
                         ("1000000000x60", "100000000x60")},
        test_labels={"job": AGENT_JOB, "instance": "a:9101"}),
    Threshold(
        alert="FileDescriptorsExhausting", metrics=(m.PROCESS_OPEN_FDS, m.PROCESS_MAX_FDS),
        scenario=sc.RESOURCE_EXHAUSTION, panel=panels.FDS, unit="%", warning=0.8, for_="10m",
        expr=(f'{s(m.PROCESS_OPEN_FDS)}{{job=~"{ORCHESTRATOR_JOBS}"}} /'
              f' {s(m.PROCESS_MAX_FDS)}{{job=~"{ORCHESTRATOR_JOBS}"}} > {{value}}'),
        summary="{{ $labels.instance }} uses more than {value} of its file descriptors",
        description="{{ $labels.instance }} has had more than {value} of its file-descriptor"
                    " limit open for {for_}.",
        runbook=Runbook(
            meaning="Sockets or files leak, or the limit is too low.",
            impact="New connections fail (EMFILE): requests and tasks error.",
            diagnose=("orchestrator stack status",
                      "curl -sS {agent_metrics}/metrics | grep -E '^process_(open|max)_fds'"),
            mitigate=("Restart the process; raise the limit (ulimit -n) if load is real.",),
            escalate=ESCALATE_P2),
        test_series={
            f'{s(m.PROCESS_OPEN_FDS)}{{job="{AGENT_JOB}",instance="a:9101"}}':
                ("950x60", "10x60"),
            f'{s(m.PROCESS_MAX_FDS)}{{job="{AGENT_JOB}",instance="a:9101"}}':
                ("1000x60", "1000x60")},
        test_labels={"job": AGENT_JOB, "instance": "a:9101"}),
    Threshold(
        alert="DiskSpaceLow", metrics=(m.DISK_FREE, m.DISK_SIZE),
        scenario=sc.RESOURCE_EXHAUSTION, panel=panels.DISK_FREE, unit="%",
        warning=0.15, critical=0.05, for_="5m",
        expr=(f"min by (instance, volume) ({s(m.DISK_FREE)}) /"
              f" max by (instance, volume) ({s(m.DISK_SIZE)}) < {{value}}"),
        summary="The {{ $labels.volume }} volume has less than {value} free",
        description="Less than {value} of the {{ $labels.volume }} volume seen by"
                    " {{ $labels.instance }} has been free for {for_}.",
        runbook=Runbook(
            meaning="A volume the system writes to is filling up: the database's data"
                    " folder (tables, WAL) or the state folder (logs, metrics files).",
            impact="A full database volume stops every write: submissions fail with 503 and"
                    " workers hold their messages. A full state volume loses logs and"
                    " metrics.",
            diagnose=("df -h {logs}",
                      f"{PSQL} -c \"SELECT pg_size_pretty(pg_database_size(current_database()))\"",
                      f"{PSQL} -c \"SELECT relname, pg_size_pretty(pg_total_relation_size(oid))"
                      " FROM pg_class WHERE relkind = 'r' ORDER BY pg_total_relation_size(oid)"
                      " DESC LIMIT 5\"",
                      "du -sh {logs}"),
            mitigate=("Free space: remove old logs in the state folder; archive and delete"
                      " finished tasks; check for a stuck replication slot holding WAL.",
                      "Grow the volume before it reaches zero; PostgreSQL stops at zero."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.DISK_FREE)}{{volume="database",instance="api:8000"}}':
                         ("1000x60", "900000x60"),
                     f'{s(m.DISK_SIZE)}{{volume="database",instance="api:8000"}}':
                         ("1000000x60", "1000000x60")},
        test_labels={"volume": "database", "instance": "api:8000"}),
    Threshold(
        alert="EventLoopLagHigh", metrics=(m.EVENT_LOOP_LAG,), scenario=sc.HIGH_LATENCY,
        panel=panels.EVENT_LOOP_LAG, unit="s", warning=0.1, critical=1.0, for_="5m",
        expr=f"max by (job, instance) ({s(m.EVENT_LOOP_LAG)}) > {{value}}",
        summary="{{ $labels.instance }} event loop lags more than {value}",
        description="Timers on {{ $labels.instance }} ran more than {value} late for {for_}:"
                    " something blocks the event loop.",
        runbook=Runbook(
            meaning="CPU-bound or blocking code runs on the event loop.",
            impact="Every request and task in that process stalls; heartbeats may lapse.",
            diagnose=("curl -sS {api}/metrics | grep -E '^orchestrator_event_loop_lag'",
                      "curl -sS {agent_metrics}/metrics | grep -E '^orchestrator_event_loop_lag'",
                      "orchestrator stack status"),
            mitigate=("Move blocking agent work to a thread (asyncio.to_thread).",
                      "Lower ORCH_CONCURRENCY for CPU-heavy agents."),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.EVENT_LOOP_LAG)}{{job="{AGENT_JOB}",instance="a:9101"}}':
                         ("2x60", "0.001x60")},
        test_labels={"job": AGENT_JOB, "instance": "a:9101"}),
    Threshold(
        alert="CacheHitRatioLow", metrics=(m.CACHE_REQUESTS,), scenario=sc.REDIS_DOWN,
        panel=panels.CACHE_HIT_RATIO, unit="%", warning=0.5, for_="15m",
        expr=(f'sum(rate({s(m.CACHE_REQUESTS)}{{outcome="hit"}}[15m])) /'
              f" sum(rate({s(m.CACHE_REQUESTS)}[15m])) < {{value}}"),
        summary="Status-cache hit ratio below {value}",
        description="Fewer than {value} of status reads were served from Redis for {for_}.",
        runbook=Runbook(
            meaning="Status reads miss the cache (Redis flushed, evicting, or failing).",
            impact="PostgreSQL carries the read load; latency rises.",
            diagnose=("{redis_cli} info stats | grep -E 'hits|misses|evicted'",
                      "{redis_cli} info memory | grep used_memory_human"),
            mitigate=("Give Redis more memory or check maxmemory-policy.",),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.CACHE_REQUESTS)}{{outcome="hit"}}': ("0+10x60", "0+90x60"),
                     f'{s(m.CACHE_REQUESTS)}{{outcome="miss"}}': ("0+90x60", "0+10x60")}),
    Threshold(
        alert="ScrapeTargetDown", metrics=(m.UP,), scenario=sc.MONITORING_GAP,
        panel=panels.SCRAPE_TARGETS, warning=1, for_="2m",
        expr=f'{s(m.UP)}{{job=~"{ORCHESTRATOR_JOBS}"}} < {{value}}',
        summary="Prometheus cannot scrape {{ $labels.instance }}",
        description="{{ $labels.job }} target {{ $labels.instance }} has had up below {value}"
                    " (no answer to scrapes) for {for_}.",
        runbook=Runbook(
            meaning="A process stopped or its /metrics port is unreachable.",
            impact="Alerts that need its metrics are blind.",
            diagnose=("curl -sS {prometheus}/api/v1/targets?state=active",
                      "curl -sS -o /dev/null -w '%{http_code}\\n' {agent_metrics}/metrics"),
            mitigate=("Restart the process, or fix the scrape config.",),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.UP)}{{job="{AGENT_JOB}",instance="a:9101"}}': ("0x60", "1x60")},
        test_labels={"job": AGENT_JOB, "instance": "a:9101"}),
    Threshold(
        alert="AgentTargetsAbsent", metrics=(m.UP, m.AGENTS_LIVE), scenario=sc.MONITORING_GAP,
        panel=panels.SCRAPE_TARGETS, warning=1, for_="5m",
        expr=(f'(count({s(m.UP)}{{job="{AGENT_JOB}"}} == 1) or vector(0)) < {{value}}'
              f" and on () (sum({s(m.AGENTS_LIVE)}) > 0)"),
        summary="No agent process is being scraped",
        description="Fewer than {value} agent processes have answered scrapes for {for_},"
                    " while workers send heartbeats: the alerts that read agent metrics are"
                    " blind.",
        runbook=Runbook(
            meaning="Workers run (their heartbeats arrive) but Prometheus scrapes none of"
                    " them: a wrong scrape config or metrics port. (No live worker at all is"
                    " AgentsMissing.)",
            impact="Agent metrics and the alerts built on them are blind.",
            diagnose=("orchestrator stack status",
                      "curl -sS {prometheus}/api/v1/targets?state=active",
                      "orchestrator agents"),
            mitigate=("Compare the agents' metrics ports (orchestrator stack status) with the"
                      " scrape targets; fix the scrape config or restart the agent on its"
                      " port (orchestrator agent --metrics-port PORT).",),
            escalate=ESCALATE_P2),
        test_series={f'{s(m.UP)}{{job="{AGENT_JOB}",instance="a:9101"}}': ("0x60", "1x60"),
                     f'{s(m.AGENTS_LIVE)}{{agent="echo"}}': ("1x60", "1x60")},
        quiet_series={f'{s(m.UP)}{{job="{AGENT_JOB}",instance="a:9101"}}': "0x60",
                      f'{s(m.AGENTS_LIVE)}{{agent="echo"}}': "0x60"}),
)
