"""What a run measured: counters, latency histograms and per-second series.

Times are seconds from the start of the run on the client's monotonic clock; the task's own
timestamps (``created_at``, ``started_at``, ``finished_at``) are only ever subtracted from each
other, so the client's and the server's clocks never need to agree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.slos import wait_class
from loadtest.histogram import Histogram

CONNECTION_ERROR = "connection"
TIMEOUT = "timeout"
TASK_DEAD = "task_dead"
TASK_CANCELLED = "task_cancelled"
TASK_UNFINISHED = "task_unfinished"
POLL_ERROR = "poll_error"
BAD_RESPONSE = "bad_response"


def http_error(status: int) -> str:
    """The error kind of an unexpected HTTP status, e.g. ``http_503``."""
    return f"http_{status}"


@dataclass
class SecondStats:
    """One second of the run."""

    sent: int = 0
    """Requests sent in this second."""
    accepted: int = 0
    """202 answers received in this second."""
    errors: int = 0
    """Failed requests, by when their failure was seen."""
    completed: int = 0
    """Tasks that reached a final state in this second."""
    in_flight: int = 0
    """HTTP requests outstanding at the end of the second."""
    submit: Histogram = field(default_factory=Histogram)
    """Submit latency of the requests due in this second."""
    end_to_end: Histogram = field(default_factory=Histogram)
    """End-to-end latency of the tasks due in this second."""
    queue_wait: Histogram = field(default_factory=Histogram)
    """Queue wait (created to started) of the tasks due in this second."""


@dataclass
class AgentStats:
    """Per agent type of the mix."""

    sent: int = 0
    accepted: int = 0
    succeeded: int = 0
    dead: int = 0
    end_to_end: Histogram = field(default_factory=Histogram)


@dataclass
class TaskTimes:
    """The durations of one final task, from its own timestamps."""

    status: str
    queue_wait_s: float | None
    run_s: float | None
    server_s: float | None
    """``finished_at - created_at``."""
    outbox_s: float | None = None
    """Where the queue wait went, part 1: ``published_at - created_at`` (in the outbox)."""
    broker_s: float | None = None
    """Part 2: ``started_at - published_at`` (in the agent queue and a worker's prefetch)."""

    @classmethod
    def of(cls, task: dict[str, Any]) -> TaskTimes:
        created = _parse_time(task.get("created_at"))
        published = _parse_time(task.get("published_at"))
        started = _parse_time(task.get("started_at"))
        finished = _parse_time(task.get("finished_at"))
        return cls(status=str(task.get("status")),
                   queue_wait_s=_seconds(created, started), run_s=_seconds(started, finished),
                   server_s=_seconds(created, finished), outbox_s=_seconds(created, published),
                   broker_s=_seconds(published, started))


class RunStats:
    """Everything one run records; fed by the generator and the completion tracker."""

    def __init__(self, queue_wait_target_s: float | None = None) -> None:
        self.queue_wait_target_s = queue_wait_target_s
        """A drill's override of the queue-wait target; ``None``: each agent type's class
        target (``alerts.slos.QUEUE_WAIT_CLASSES``)."""
        self.sent = 0
        self.answered = 0
        self.accepted = 0
        self.tracked = 0
        """Accepted tasks followed to their final state."""
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.unavailable = 0
        """Requests answered with a 5xx, or not answered (connection error, timeout)."""
        self.submit = Histogram()
        """Submit latency: intended send time to the complete answer."""
        self.end_to_end = Histogram()
        """Intended send time to the task's final state."""
        self.queue_wait = Histogram()
        self.outbox_wait = Histogram()
        self.broker_wait = Histogram()
        self.run = Histogram()
        self.lateness = Histogram()
        """Actual minus intended send time: how far the generator itself fell behind."""
        self.tasks: Counter[str] = Counter()
        """Final task statuses (and ``unfinished``)."""
        self.queue_wait_good = 0
        self.queue_wait_total = 0
        self.first_send_s: float | None = None
        self.last_send_s: float | None = None
        self.first_intended_s: float | None = None
        self.last_intended_s: float | None = None
        self.last_final_s: float | None = None
        self.series: dict[int, SecondStats] = {}
        self.agents: dict[str, AgentStats] = {}

    def second(self, t: float) -> SecondStats:
        return self.series.setdefault(max(int(t), 0), SecondStats())

    def agent(self, name: str) -> AgentStats:
        return self.agents.setdefault(name, AgentStats())

    def record_send(self, agent: str, intended_s: float, actual_s: float) -> None:
        """A request leaves the generator (``actual_s`` is when its coroutine ran)."""
        self.sent += 1
        self.agent(agent).sent += 1
        self.lateness.record(actual_s - intended_s)
        if self.first_send_s is None:
            self.first_send_s, self.first_intended_s = actual_s, intended_s
        self.last_send_s, self.last_intended_s = actual_s, intended_s
        self.second(actual_s).sent += 1

    def record_answer(self, agent: str, intended_s: float, done_s: float, status: int) -> None:
        """An HTTP answer to a submit (202 expected)."""
        self.answered += 1
        self.statuses[status] += 1
        latency = done_s - intended_s
        self.submit.record(latency)
        self.second(intended_s).submit.record(latency)
        if status == 202:
            self.accepted += 1
            self.agent(agent).accepted += 1
            self.second(done_s).accepted += 1
            return
        self.errors[http_error(status)] += 1
        self.second(done_s).errors += 1
        if status >= 500:
            self.unavailable += 1

    def record_failure(self, kind: str, done_s: float) -> None:
        """A submit without an answer: ``connection`` or ``timeout``."""
        self.errors[kind] += 1
        self.unavailable += 1
        self.second(done_s).errors += 1

    def record_final(self, agent: str, intended_s: float, send_offset_s: float,
                     task: dict[str, Any]) -> TaskTimes:
        """A task reached a final state. End-to-end latency = the time from the intended send
        to the request going out (client clock) + ``finished_at - created_at`` (server
        clock)."""
        times = TaskTimes.of(task)
        self.tasks[times.status] += 1
        stats = self.agent(agent)
        if times.status == "succeeded":
            stats.succeeded += 1
        elif times.status == "dead":
            stats.dead += 1
            self.errors[TASK_DEAD] += 1
        elif times.status == "cancelled":
            self.errors[TASK_CANCELLED] += 1
        if times.outbox_s is not None and times.broker_s is not None:
            self.outbox_wait.record(times.outbox_s)
            self.broker_wait.record(times.broker_s)
        if times.queue_wait_s is not None:
            self.queue_wait.record(times.queue_wait_s)
            self.second(intended_s).queue_wait.record(times.queue_wait_s)
            self.queue_wait_total += 1
            self.queue_wait_good += times.queue_wait_s <= self.wait_target_s(agent)
        if times.run_s is not None:
            self.run.record(times.run_s)
        if times.server_s is not None:
            e2e = send_offset_s + times.server_s
            self.end_to_end.record(e2e)
            stats.end_to_end.record(e2e)
            self.second(intended_s).end_to_end.record(e2e)
            done = intended_s + e2e
            self.second(done).completed += 1
            self.last_final_s = done if self.last_final_s is None else max(self.last_final_s,
                                                                           done)
        return times

    def wait_target_s(self, agent: str) -> float:
        """The queue-wait target ``agent``'s tasks are judged against."""
        if self.queue_wait_target_s is not None:
            return self.queue_wait_target_s
        return wait_class(agent).target_s

    def record_unfinished(self, agent: str, started: bool, waited_s: float) -> None:
        """A task still not final when the run stopped waiting. One that never started and has
        waited past the queue-wait target counts against that objective already."""
        self.tasks["unfinished"] += 1
        self.errors[TASK_UNFINISHED] += 1
        if not started and waited_s > self.wait_target_s(agent):
            self.queue_wait_total += 1

    @property
    def finished(self) -> int:
        """Tasks that succeeded or went dead (the task-success SLO's events)."""
        return self.tasks["succeeded"] + self.tasks["dead"]

    def send_window_s(self) -> float | None:
        """First to last send."""
        if self.first_send_s is None or self.last_send_s is None:
            return None
        return self.last_send_s - self.first_send_s

    def achieved_rate(self) -> float | None:
        """Requests per second actually sent: intervals between sends over their span."""
        window = self.send_window_s()
        if not window or self.sent < 2:
            return None
        return (self.sent - 1) / window

    def target_rate(self) -> float | None:
        """The average rate the schedule asked for over the same intervals."""
        if self.first_intended_s is None or self.last_intended_s is None or self.sent < 2:
            return None
        window = self.last_intended_s - self.first_intended_s
        return (self.sent - 1) / window if window > 0 else None

    def completion_rate(self) -> float | None:
        """Final tasks per second, from the first send to the last final state (of the tracked
        tasks, scaled up to all accepted ones when only a sample was tracked)."""
        if self.first_send_s is None or self.last_final_s is None:
            return None
        window = self.last_final_s - self.first_send_s
        done: float = sum(self.tasks[s] for s in ("succeeded", "dead", "cancelled"))
        if self.tracked:
            done = done * self.accepted / self.tracked
        return done / window if window > 0 else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()
