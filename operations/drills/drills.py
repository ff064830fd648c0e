"""Every scenario of the incident guide as a drill: the real fault, the alerts that must page
(and the consequences allowed beside them), the scenario the doctor must name, and the
runbook's mitigation. One record per drill."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import psycopg

from alerts import scenarios as sc
from alerts.model import Scenario
from catalog import names
from operations.drills.harness import SCRATCH_MIB, DrillStack, wait_until
from service.broker.messages import TaskMessage, encode

Step = Callable[[DrillStack, dict[str, Any]], None]
"""A fault or a mitigation; the dict carries what the fault left for its mitigation."""


@dataclass(frozen=True)
class Drill:
    name: str
    scenario: Scenario
    alerts: tuple[str, ...]
    """Every one of these must fire and notify (page or chat) with a runbook link that answers."""
    inject: Step
    mitigate: Step
    tolerated: tuple[str, ...] = ()
    """Consequences that may notify beside them; any other critical alert fails the drill."""
    what: str = ""
    needs_root: bool = False


def _kill(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _replace_agent(stack: DrillStack, state: dict[str, Any]) -> None:
    """The runbook's "restart the worker": stop it for good, start a new one."""
    pid = state.get("agent_pid") or stack.serving("agent")
    _kill(pid, signal.SIGCONT)
    _kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    stack.start_agent()


# --- 1 API down ---------------------------------------------------------------------------------

def _api_down(stack: DrillStack, state: dict[str, Any]) -> None:
    _kill(stack.serving("api"))


def _api_up(stack: DrillStack, state: dict[str, Any]) -> None:
    stack.start_api()


# --- 2 pool exhaustion: a transaction holds a lock every request needs ------------------------

def _hold_lock(stack: DrillStack, state: dict[str, Any]) -> None:
    conn = psycopg.connect(stack.direct_database_url, autocommit=False)
    conn.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
    state["conn"], state["backend_pid"] = conn, conn.info.backend_pid
    stop = threading.Event()
    state["stop"] = stop

    def traffic() -> None:  # clients keep listing tasks; each list holds a connection, waiting
        import httpx
        with httpx.Client(base_url=stack.api, timeout=6,
                          headers={"Authorization": f"Bearer {stack.key}"}) as client:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.get("/v1/tasks", params={"limit": 5})

    state["threads"] = [threading.Thread(target=traffic, daemon=True) for _ in range(30)]
    for thread in state["threads"]:
        thread.start()


def _end_lock(stack: DrillStack, state: dict[str, Any]) -> None:
    """The runbook's step: find the long transaction and terminate its backend (again when a
    failed drill mitigates a second time)."""
    stack.psql(f"SELECT pg_terminate_backend({state['backend_pid']})")
    state["stop"].set()
    for thread in state["threads"]:
        thread.join(10)
    with contextlib.suppress(Exception):
        state["conn"].close()


# --- 3, 4, 5 the dependencies -------------------------------------------------------------------

def _stop(name: str) -> Step:
    def step(stack: DrillStack, state: dict[str, Any]) -> None:
        stack.services.stop(name)
        if name == "RabbitMQ":  # accepted meanwhile, kept in the outbox
            stack.submit("echo", "during the outage")
    return step


def _start(name: str) -> Step:
    def step(stack: DrillStack, state: dict[str, Any]) -> None:
        stack.services.start(name)
    return step


def _hang_redis(stack: DrillStack, state: dict[str, Any]) -> None:
    import subprocess
    port = stack.services.ports["Redis"]
    state["sleeper"] = subprocess.Popen(["redis-cli", "-p", str(port), "debug", "sleep", "600"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _restart_hung_redis(stack: DrillStack, state: dict[str, Any]) -> None:
    """A Redis stuck in a command obeys no SHUTDOWN: kill it and start it again."""
    stack.services.kill_redis()
    state["sleeper"].kill()
    stack.services.start("Redis")


# --- 6 a failing dependency makes an agent type fail ---------------------------------------------

def _llm_failing(stack: DrillStack, state: dict[str, Any]) -> None:
    """The language model the ``llm`` agent calls is unreachable: every attempt fails."""
    state["ids"] = stack.submit("llm", {"prompt": "drill"}, count=40, max_attempts=2)


def _llm_back(stack: DrillStack, state: dict[str, Any]) -> None:
    """The runbook's step: fix the dependency (a stand-in for the model API comes up on the
    configured address; the outside SaaS cannot be reached from here)."""
    from operations.drills.fake_llm import serve_fake_llm
    state["llm"] = serve_fake_llm(stack.llm_port)[1]
    stack.closers.append(state["llm"].shutdown)
    stack.submit("llm", {"prompt": "after the fix"}, count=40)


# --- 7 processing stalled -------------------------------------------------------------------

def _hang_agent(stack: DrillStack, state: dict[str, Any]) -> None:
    stack.submit("sleep", {"seconds": 60}, count=4, timeout_s=2)
    wait_until(lambda: stack.psql("SELECT count(*) FROM tasks WHERE status = 'running'"
                                  " AND agent = 'sleep'") == "4", 20, "the tasks to start")
    state["agent_pid"] = stack.serving("agent")
    _kill(state["agent_pid"], signal.SIGSTOP)


def _slow_agent(stack: DrillStack, state: dict[str, Any]) -> None:
    """More work than the agents can take: 1,500 five-second tasks on 16 slots."""
    stack.submit("sleep", {"seconds": 5}, count=1500)


def _add_capacity(stack: DrillStack, state: dict[str, Any]) -> None:
    """The runbook's step: start more agent capacity for the type."""
    stack.spawn("agent-extra", "agent", "--agents", "sleep", "--concurrency", "2000",
                "--metrics-port", "0")


# --- 8 a corrupted row ------------------------------------------------------------------------

def _corrupt(stack: DrillStack, state: dict[str, Any]) -> None:
    """Change the stored input of tasks waiting for their retry, behind the API's back (each
    fails twice, so there are two retry waits to catch it in)."""
    ids = stack.submit("fail", {"until_attempt": 3}, count=3)
    corrupted: set[str] = set()
    listed = ",".join(f"'{i}'" for i in ids)

    def corrupt_the_waiting() -> bool:
        out = stack.psql("UPDATE tasks SET input = '{\"until_attempt\": 9}' WHERE id IN"
                         f" ({listed}) AND status = 'retrying' RETURNING id")
        corrupted.update(re.findall(r"[0-9a-f]{8}-[0-9a-f-]{27}", out))
        return corrupted == set(ids)
    wait_until(corrupt_the_waiting, 30, "the tasks to wait for their retry", interval_s=0.05)
    state["ids"] = ids


def _restore_rows(stack: DrillStack, state: dict[str, Any]) -> None:
    """The runbook's step: restore the rows (here: their submitted input) and requeue."""
    ids = ",".join(f"'{i}'" for i in state["ids"])
    stack.psql(f"UPDATE tasks SET input = '{{\"until_attempt\": 3}}' WHERE id IN ({ids})")
    with stack.client() as client:
        for task_id in state["ids"]:
            client.post(f"/v1/tasks/{task_id}/retry")


# --- 9 message loss ---------------------------------------------------------------------------

def _purge(stack: DrillStack, state: dict[str, Any]) -> None:
    queue = names.agent_queue("sleep")
    stack.submit("sleep", {"seconds": 1}, count=300)
    # purged once the relay has published many: more than the alert's 50 are lost
    wait_until(lambda: stack.ready_messages(queue) >= 100, 60,
               "the sleep queue to hold 100 ready messages")
    stack.rabbitmqctl("purge_queue", queue)


def _nothing(stack: DrillStack, state: dict[str, Any]) -> None:
    """Nothing to do by hand: the system repairs itself (the runbook says so)."""


# --- 10 a leaking agent -------------------------------------------------------------------------

def _leak(stack: DrillStack, state: dict[str, Any]) -> None:
    stack.submit("leak", {"mib": 100}, count=9)


# --- 12 resources ------------------------------------------------------------------------------

def _fill_disk(stack: DrillStack, state: dict[str, Any]) -> None:
    path = stack.scratch / "filler"
    state["filler"] = path
    with path.open("wb") as out:
        out.write(b"\0" * (SCRATCH_MIB - 2) * 2**20)


def _free_disk(stack: DrillStack, state: dict[str, Any]) -> None:
    state["filler"].unlink()


def _hold_fds(stack: DrillStack, state: dict[str, Any]) -> None:
    import subprocess
    pid = stack.serving("agent")
    subprocess.run(["prlimit", f"--pid={pid}", "--nofile=400:400"], check=True)
    stack.submit("hold-fds", {"count": 350})


# --- 13 agent gone, 16 scrape target gone --------------------------------------------------------

def _stop_agent(stack: DrillStack, state: dict[str, Any]) -> None:
    _kill(stack.serving("agent"), signal.SIGTERM)
    stack.submit("echo", "waiting for a worker", count=5)


def _start_agent(stack: DrillStack, state: dict[str, Any]) -> None:
    stack.start_agent()


def _hide_target(stack: DrillStack, state: dict[str, Any]) -> None:
    """The workers run, but the one Prometheus scrapes is gone: monitoring is blind to them."""
    state["unscraped"] = stack.spawn("agent-unscraped", "agent", "--metrics-port", "0")
    wait_until(lambda: stack.psql("SELECT count(*) FROM workers WHERE last_seen >"
                                  " now() - interval '2 seconds'") == "2", 30,
               "the second worker to send heartbeats")
    _kill(stack.serving("agent"), signal.SIGTERM)


def _restore_target(stack: DrillStack, state: dict[str, Any]) -> None:
    stack.start_agent()
    state["unscraped"].terminate()


# --- 14 duplicates, 15 dead letters --------------------------------------------------------------

def _duplicate(stack: DrillStack, state: dict[str, Any]) -> None:
    """A publisher sends every message twice."""
    import asyncio
    ids = stack.submit("echo", "twice", count=60)
    wait_until(lambda: all(stack.task(i)["status"] == "succeeded" for i in ids), 30,
               "the tasks to finish")

    async def publish_again() -> None:
        connection = await aio_pika.connect(stack.settings.broker.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(names.WORK_EXCHANGE)
            for task_id in ids:
                await exchange.publish(aio_pika.Message(encode(TaskMessage(task_id, "echo", 1))),
                                       routing_key="echo")

    asyncio.run(publish_again())


def _dead_letters(stack: DrillStack, state: dict[str, Any]) -> None:
    stack.submit("fail", {"non_retryable": True}, count=25)


DRILLS: tuple[Drill, ...] = (
    Drill("api-down", sc.API_DOWN, ("ApiDown",), _api_down, _api_up,
          tolerated=("ScrapeTargetDown",), what="SIGKILL the API; restart it"),
    Drill("pool-exhaustion", sc.POOL_EXHAUSTION, ("DbPoolExhausted",), _hold_lock, _end_lock,
          tolerated=("DbPoolUsageHigh", "ApiLatencyHigh", "ApiErrorRatioHigh",
                     "TaskProcessingStalled", "OldestQueuedTaskTooOld", "EventLoopLagHigh"),
          what="a transaction holds ACCESS EXCLUSIVE on tasks while 30 clients list tasks;"
               " terminate its backend"),
    Drill("broker-down", sc.BROKER_DOWN, ("RabbitmqDown",), _stop("RabbitMQ"),
          _start("RabbitMQ"), tolerated=("OutboxBacklog", "PublishFailing"),
          what="stop the stack's RabbitMQ node; start it"),
    Drill("redis-down", sc.REDIS_DOWN, ("RedisDown",), _stop("Redis"), _start("Redis"),
          tolerated=("CacheHitRatioLow",), what="shut the stack's Redis down; start it"),
    Drill("redis-hung", sc.REDIS_DOWN, ("RedisDown",), _hang_redis, _restart_hung_redis,
          tolerated=("CacheHitRatioLow",), what="DEBUG SLEEP 600; kill and restart it"),
    Drill("database-down", sc.DATABASE_DOWN, ("DatabaseDown",), _stop("PostgreSQL"),
          _start("PostgreSQL"),
          tolerated=("ApiErrorRatioHigh", "ApiLatencyHigh"),
          what="stop the stack's PostgreSQL; start it"),
    Drill("error-spike", sc.HIGH_ERROR_RATE, ("TaskFailureRatioHigh",), _llm_failing,
          _llm_back, tolerated=("DeadLetterQueueGrowing",),
          what="the llm agent's model API is unreachable; bring it back"),
    Drill("hung-agent", sc.PROCESSING_STALLED, ("TasksRunningPastTimeout",), _hang_agent,
          _replace_agent, tolerated=("AgentsMissing",),
          what="SIGSTOP the agent running 2 s-timeout tasks; kill it, start another"),
    Drill("slow-agent", sc.PROCESSING_STALLED, ("QueueDepthHigh",), _slow_agent,
          _add_capacity, tolerated=("OldestQueuedTaskTooOld",),
          what="1,500 five-second tasks on 16 slots; add capacity"),
    Drill("corrupted-row", sc.DATA_CORRUPTION, ("DataIntegrityCheckFailed",), _corrupt,
          _restore_rows, tolerated=("DeadLetterQueueGrowing",),
          what="change the stored input of tasks waiting to retry; restore and requeue"),
    Drill("purged-queue", sc.MESSAGE_LOSS, ("MessagesLost",), _purge, _nothing,
          tolerated=("DuplicateDeliveriesHigh",),
          what="purge the sleep queue holding ~280 messages; the reconciler republishes"),
    Drill("leaking-agent", sc.MEMORY_LEAK, ("ProcessMemoryHigh",), _leak, _replace_agent,
          tolerated=("ProcessMemoryGrowing",), what="an agent keeps 900 MiB; restart it"),
    Drill("slow-database", sc.HIGH_LATENCY, ("ApiLatencyHigh",),
          lambda stack, state: _slow_link(stack, 0.15),
          lambda stack, state: _slow_link(stack, 0.0),
          tolerated=("DbPoolUsageHigh", "DbPoolExhausted", "EventLoopLagHigh"),
          what="150 ms more each way on the database link; restore it"),
    Drill("disk-full", sc.RESOURCE_EXHAUSTION, ("DiskSpaceLow",), _fill_disk, _free_disk,
          needs_root=True, what="fill a 64 MiB volume to 97%; delete the file"),
    Drill("fd-exhaustion", sc.RESOURCE_EXHAUSTION, ("FileDescriptorsExhausting",), _hold_fds,
          _replace_agent, what="an agent holds 350 of its 400 descriptors; restart it"),
    Drill("agent-gone", sc.AGENT_NOT_RESPONDING, ("AgentsMissing",), _stop_agent, _start_agent,
          tolerated=("ScrapeTargetDown",), what="SIGTERM the only agent; start one"),
    Drill("duplicates", sc.DUPLICATES, ("DuplicateDeliveriesHigh",), _duplicate, _nothing,
          what="every message of 60 finished tasks published again; the duplicates stop"),
    Drill("dead-letter-growth", sc.DEAD_LETTER_GROWTH, ("DeadLetterQueueGrowing",),
          _dead_letters, _nothing, what="25 tasks fail for good; the failures stop"),
    Drill("scrape-target-gone", sc.MONITORING_GAP, ("AgentTargetsAbsent",), _hide_target,
          _restore_target, tolerated=("ScrapeTargetDown",),
          what="the scraped agent stops while an unscraped one works; restore the target"),
)


def _slow_link(stack: DrillStack, delay_s: float) -> None:
    stack.proxy.delay_s = delay_s
    if delay_s:  # traffic to be slow: clients keep reading their tasks
        stop = threading.Event()
        stack.extra_state["slow_stop"] = stop

        def traffic() -> None:
            import httpx
            with httpx.Client(base_url=stack.api, timeout=10,
                              headers={"Authorization": f"Bearer {stack.key}"}) as client:
                while not stop.is_set():
                    with contextlib.suppress(httpx.HTTPError):
                        client.post("/v1/tasks", json={"agent": "echo", "input": "slow"})

        for _ in range(4):
            threading.Thread(target=traffic, daemon=True).start()
    elif "slow_stop" in stack.extra_state:
        stack.extra_state.pop("slow_stop").set()


BY_NAME = {drill.name: drill for drill in DRILLS}


def drills_by_alert() -> dict[str, str]:
    """Alert -> the drill that proves it (for the runbook's sections)."""
    found: dict[str, str] = {}
    for drill in DRILLS:
        for alert in drill.alerts:
            found.setdefault(alert, drill.name)
    return found
