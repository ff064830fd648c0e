"""Flow control across every worker: per agent type a rate of tasks started, a budget of model
tokens, a bound on the tasks running at once, and a bound per concurrency key, all kept in
Redis and judged atomically, so they hold however many workers run.

A delivery over a limit is not run and not failed: the worker hands the task back to wait
(``throttled`` on its timeline, through the delay queues), spending no attempt. A running task
holds a lease in the agent's (and its key's) sorted set; the worker renews its leases while
they run, so the slots of a worker that died free themselves within ``LEASE_S``; a redelivered
message (its worker may have died running the task) is not held back. Without Redis the limits
are not enforced (logged): work goes on, as everywhere Redis is optional.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Literal

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agents.registry import FlowLimits, get_agent, known_agents
from catalog.names import RedisKeys
from service.ratelimit import Rate, RateLimiter, parse_rate

LEASE_S = 30.0
"""How long a running task's slot is held without renewal (renewed every third of it)."""
Limit = Literal["rate", "tokens", "concurrency", "key_concurrency"]  # THROTTLE_LIMITS

_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member, lease = ARGV[1], tonumber(ARGV[2])
local limits = {tonumber(ARGV[3]), tonumber(ARGV[4])}
for i = 1, 2 do
  if limits[i] > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    if not redis.call('ZSCORE', KEYS[i], member) and redis.call('ZCARD', KEYS[i]) >= limits[i] then
      return i
    end
  end
end
for i = 1, 2 do
  if limits[i] > 0 then
    redis.call('ZADD', KEYS[i], now + lease, member)
    redis.call('PEXPIRE', KEYS[i], lease + 1000)
  end
end
return 0
"""
"""Take a slot in the agent's set (``KEYS[1]``) and the key's (``KEYS[2]``) at once, or none:
``ARGV`` member, lease ms, the two limits (0: none). Returns 0, or which set is full."""

_RENEW = """
local t = redis.call('TIME')
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expires, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 1000)
return 0
"""
"""Extend the leases of ``ARGV[2..]`` in the set ``KEYS[1]`` by ``ARGV[1]`` ms, on Redis's own
clock like the leases were taken (a lease that ran out is not taken again)."""


@dataclass(frozen=True)
class Limits:
    """An agent type's flow limits, parsed."""

    rate: Rate | None = None
    tokens: Rate | None = None
    concurrency: int | None = None
    per_key: int | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.rate, self.tokens, self.concurrency,
                                            self.per_key))


_FIELDS = ("rate", "tokens", "concurrency", "max_concurrency_per_key")
"""The fields of ``FlowLimits`` a deployment may set."""


def _overrides(text: str) -> dict[str, dict[str, str]]:
    """``ORCH_AGENT_LIMITS`` as ``{agent: {field: value}}``."""
    out: dict[str, dict[str, str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        agent, sep, rest = part.partition(":")
        if not sep or not agent.strip():
            raise ValueError(f"ORCH_AGENT_LIMITS: {part!r} is not NAME:field=value,...")
        fields = out.setdefault(agent.strip(), {})
        for item in filter(None, (i.strip() for i in rest.split(","))):
            name, eq, value = item.partition("=")
            if not eq or name.strip() not in _FIELDS:
                raise ValueError(f"ORCH_AGENT_LIMITS: {item!r} for {agent.strip()}: fields are"
                                 f" {', '.join(_FIELDS)} (e.g. rate=120/min)")
            fields[name.strip()] = value.strip()
    return out


def _parsed(agent: str, declared: FlowLimits, given: dict[str, str]) -> Limits:
    raw: dict[str, object] = {f: getattr(declared, f) for f in _FIELDS}
    raw.update({f: None if v.lower() == "none" else v for f, v in given.items()})
    try:
        rate = parse_rate(str(raw["rate"])) if raw["rate"] is not None else None
        tokens = parse_rate(str(raw["tokens"])) if raw["tokens"] is not None else None
        bounds = [None if raw[f] is None else int(str(raw[f]))
                  for f in ("concurrency", "max_concurrency_per_key")]
    except ValueError as exc:
        raise ValueError(f"flow limits of {agent}: {exc}") from None
    if any(b is not None and b < 1 for b in bounds):
        raise ValueError(f"flow limits of {agent}: a concurrency must be at least 1")
    return Limits(rate, tokens, bounds[0], bounds[1])


def resolve_limits(agents: list[str], overrides: str) -> dict[str, Limits]:
    """Each agent type's limits: its ``@agent`` declaration, changed by ``ORCH_AGENT_LIMITS``;
    a ``ValueError`` naming the setting or the agent for anything unreadable."""
    given = _overrides(overrides)
    unknown = sorted(set(given) - set(known_agents()))
    if unknown:
        raise ValueError(f"ORCH_AGENT_LIMITS names unknown agents {unknown}; known agents:"
                         f" {known_agents()}")
    out = {}
    for agent in agents:
        spec = get_agent(agent)
        out[agent] = _parsed(agent, spec.limits if spec else FlowLimits(), given.get(agent, {}))
    return out


@dataclass(frozen=True)
class Wait:
    """A delivery that must wait: which limit, and at least how long (0: the backoff's say)."""

    limit: Limit
    wait_s: float


class FlowControl:
    """The limits of the agent types one worker serves."""

    def __init__(self, client: Redis, keys: RedisKeys, limits: dict[str, Limits]) -> None:
        self.keys = keys
        self.limits = limits
        self._redis = client
        self._lease = client.register_script(_LEASE)
        self._renew = client.register_script(_RENEW)
        self._buckets = RateLimiter(client, keys.prefix)
        self._held: dict[str, tuple[str, str | None]] = {}
        """Leases this worker holds: task id -> (agent, key digest)."""
        self._warned_at = -60.0

    def _digest(self, key: str | None) -> str | None:
        return hashlib.sha256(key.encode()).hexdigest()[:32] if key is not None else None

    async def admit(self, agent: str, task_id: str, key: str | None) -> Wait | None:
        """``None``: the task may start now (its slot is held until ``release``)."""
        limits = self.limits.get(agent)
        if limits is None or not limits.any:
            return None
        digest = self._digest(key) if limits.per_key else None
        try:
            if limits.concurrency or digest:
                full = await self._lease(
                    keys=[self.keys.running(agent),
                          self.keys.running_for_key(agent, digest or "-")],
                    args=[task_id, int(LEASE_S * 1000), limits.concurrency or 0,
                          (limits.per_key or 0) if digest else 0])
                if full:
                    return Wait("concurrency" if int(full) == 1 else "key_concurrency", 0.0)
                self._held[task_id] = (agent, digest)
            wait = await self._budgets(agent, limits)
            if wait is not None:
                await self.release(task_id)
            return wait
        except RedisError as exc:
            self._warn(exc)
            return None

    async def _budgets(self, agent: str, limits: Limits) -> Wait | None:
        if limits.tokens is not None:
            tokens = await self._buckets.hit(self.keys.flow_bucket(agent, "tokens"),
                                             limits.tokens, int(limits.tokens.count), take=False)
            if not tokens.allowed:
                return Wait("tokens", tokens.retry_after_s)
        if limits.rate is not None:
            burst = max(1, round(limits.rate.per_second))
            verdict = await self._buckets.hit(self.keys.flow_bucket(agent, "rate"), limits.rate,
                                              burst)
            if not verdict.allowed:
                return Wait("rate", verdict.retry_after_s)
        return None

    async def release(self, task_id: str) -> None:
        held = self._held.pop(task_id, None)
        if held is None:
            return
        agent, digest = held
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zrem(self.keys.running(agent), task_id)
            if digest is not None:
                pipe.zrem(self.keys.running_for_key(agent, digest), task_id)
            await pipe.execute()
        except RedisError as exc:
            self._warn(exc)  # the lease runs out on its own

    async def spend_tokens(self, agent: str, tokens: int) -> None:
        """Debit what a finished run's model calls used from the agent's token budget."""
        budget = self.limits.get(agent)
        if budget is None or budget.tokens is None or tokens <= 0:
            return
        try:
            await self._buckets.hit(self.keys.flow_bucket(agent, "tokens"), budget.tokens,
                                    int(budget.tokens.count), cost=tokens, force=True)
        except RedisError as exc:
            self._warn(exc)

    async def renew(self) -> None:
        """Extend the leases of the tasks still running here (a periodic pass)."""
        by_set: dict[str, list[str]] = {}
        for task_id, (agent, digest) in list(self._held.items()):
            by_set.setdefault(self.keys.running(agent), []).append(task_id)
            if digest is not None:
                by_set.setdefault(self.keys.running_for_key(agent, digest), []).append(task_id)
        try:
            for key, members in by_set.items():
                await self._renew(keys=[key], args=[int(LEASE_S * 1000), *members])
        except RedisError as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if time.monotonic() - self._warned_at >= 60:
            self._warned_at = time.monotonic()
            logger.warning("flow limits not enforced, Redis cannot answer: {}", exc)
