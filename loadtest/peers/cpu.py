"""CPU time by process group (the servers, the benchmark, each system's processes), from the
scheduler's counters of every thread on the machine: what a task costs, and where."""

from __future__ import annotations

import os

from loadtest.deployment import threads_run_ns

GROUPS = ("postgresql", "rabbitmq", "redis", "api", "agent", "celery", "dramatiq", "benchmark")


def group_of(pid: int, me: int) -> str | None:
    """Which group a process belongs to (``None``: none of them)."""
    if pid == me:
        return "benchmark"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return None
    line = b" ".join(words)
    if b"loadtest.peers.produce" in line:  # a peer's producer, in a process of its own
        return "benchmark"
    if comm == "postgres":
        return "postgresql"
    if comm in ("beam.smp", "erl_child_setup", "inet_gethost", "epmd"):
        return "rabbitmq"
    if comm == "redis-server":
        return "redis"
    if b"orchestrator api" in line or (b"multiprocessing.spawn" in line
                                       and b"orchestrator" in line):
        return "api"
    if b"orchestrator agent" in line:
        return "agent"
    if b"celery" in line and b"worker" in line:
        return "celery"
    if b"dramatiq" in line:
        return "dramatiq"
    return None


def snapshot() -> dict[str, float]:
    """CPU seconds each group has used so far (its live processes)."""
    me = os.getpid()
    used = dict.fromkeys(GROUPS, 0.0)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            group = group_of(int(entry), me)
            if group is not None:
                used[group] += threads_run_ns(int(entry)) / 1e9
    return used


def per_task_us(before: dict[str, float], after: dict[str, float],
                tasks: int) -> dict[str, float]:
    """CPU microseconds per task by group, the groups that used any."""
    out = {g: round((after[g] - before[g]) / tasks * 1e6, 1) for g in GROUPS}
    return {g: us for g, us in out.items() if us > 0.5}
