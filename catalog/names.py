"""Exchange, queue, routing-key and Redis-key names: defined here once, derived by helpers."""

from __future__ import annotations

from catalog.priorities import BANDS

WORK_EXCHANGE = "orch.tasks"
"""Direct exchange; routing key = agent type and band (``routing_key``); one quorum queue per
agent type and priority band."""

DELAY_EXCHANGE = "orch.delay"
"""Headers exchange routing retries to their delay queue by ``DELAY_HEADER``."""

DEAD_EXCHANGE = "orch.dead"
"""Fanout exchange in front of the dead-letter queue."""

DEAD_LETTER_QUEUE = "orch.dead-letter"
"""The transport of dead letters: consumed, recorded in PostgreSQL (``dead_letters``), acked."""
LEGACY_RECONCILE_QUEUE = "orch.dead-letter.reconcile"
"""Where broker dead letters were read from before the record: deleted at start (each of
its messages is also in ``DEAD_LETTER_QUEUE``)."""

CONTROL_EXCHANGE = "orch.control"
"""Fanout exchange for broadcast control messages (cooperative cancel)."""

DEMO_AGENTS = ("fail", "sleep")
"""Built-in agents that fail or stall on purpose (exercises and drills): the SLOs and the
failure-ratio alert leave them out, so playing with them burns no production budget."""

FAST_AGENTS = ("echo", "summarize")
"""Built-in agents that answer in milliseconds (no model call): their tasks are held to the
fast queue-wait objective (``alerts.slos.QUEUE_WAIT_CLASSES``); every other type to the one for
agents that wait on models."""

DELAY_HEADER = "orch-delay-ms"  # no "x-" prefix: headers exchanges ignore those
TRACEPARENT_HEADER = "traceparent"


AGENT_QUEUE_PREFIX = "orch.agent."


def agent_queue(agent: str, band: int = 0) -> str:
    """The quorum queue that holds one agent type's work of one priority band."""
    return f"{AGENT_QUEUE_PREFIX}{routing_key(agent, band)}"


def agent_queues(agent: str) -> tuple[str, ...]:
    """All of an agent type's queues, lowest band first."""
    return tuple(agent_queue(agent, band) for band in range(len(BANDS)))


def routing_key(agent: str, band: int = 0) -> str:
    """The work exchange's routing key of an agent type's band (agent names hold no dot)."""
    return f"{agent}{BANDS[band].suffix}"


def agent_of_queue(queue: str) -> str:
    """The agent type whose work ``queue`` holds ("" for a queue that is no agent's)."""
    if not queue.startswith(AGENT_QUEUE_PREFIX):
        return ""
    return queue.removeprefix(AGENT_QUEUE_PREFIX).split(".", 1)[0]


def delay_queue(delay_ms: int) -> str:
    """The delay queue for one backoff step (a quorum queue); expired messages go back to
    ``WORK_EXCHANGE``."""
    return f"orch.delay.{delay_ms}ms.quorum"


def legacy_delay_queue(delay_ms: int) -> str:
    """Where earlier releases kept that step, in a classic (unreplicated) queue: unbound when
    the quorum one is declared, deleted once its messages have expired."""
    return f"orch.delay.{delay_ms}ms"


def control_queue(worker_id: str) -> str:
    """A worker's own exclusive queue on the control exchange."""
    return f"orch.control.{worker_id}"


class RedisKeys:
    """Redis key layout under one prefix (tests use their own)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def task(self, task_id: str) -> str:
        return f"{self.prefix}task:{task_id}"

    def stream(self, task_id: str) -> str:
        """The stream of a task's progress and partial output."""
        return f"{self.prefix}stream:{task_id}"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.prefix}hb:{worker_id}"

    def heartbeat_pattern(self) -> str:
        return f"{self.prefix}hb:*"

    def running(self, agent: str) -> str:
        """The sorted set of an agent type's running tasks (score: when the lease ends)."""
        return f"{self.prefix}flow:running:{agent}"

    def running_for_key(self, agent: str, key_digest: str) -> str:
        """The running tasks of one concurrency key (by its digest: keys are any text)."""
        return f"{self.prefix}flow:key:{agent}:{key_digest}"

    def flow_bucket(self, agent: str, what: str) -> str:
        """A rate bucket of an agent type (without the prefix: the rate limiter adds it)."""
        return f"flow:{what}:{agent}"
