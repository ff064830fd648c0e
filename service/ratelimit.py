"""Rate limits: rates written as ``N/s``, ``N/min`` or ``N/h`` (settings, ``keys create
--rate-limit``) and token buckets (GCRA) in Redis, atomic in one script."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}
RATE_PATTERN = (r"^([1-9][0-9]{0,11}(\.[0-9]{1,6})?|0\.[0-9]{0,5}[1-9])"
                rf"/({'|'.join(_PERIODS)})$")
"""What a new key's rate may be written as (the API declares it): ``N/s``, ``N/min`` or ``N/h``
with N > 0, lower case, no spaces. ``parse_rate`` reads these, and older spellings too."""


@dataclass(frozen=True)
class Rate:
    count: float
    period_s: float

    @property
    def per_second(self) -> float:
        return self.count / self.period_s

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period_s, f"{self.period_s:g}s")
        return f"{self.count:g}/{unit}"


def parse_rate(text: str) -> Rate:
    """``"50/s"`` -> 50 per second; a clear ``ValueError`` for anything else."""
    count, _, period = text.strip().partition("/")
    try:
        value = float(count)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value <= 0 or period.strip().lower() not in _PERIODS:
        raise ValueError(f"rate {text!r} is not N/s, N/min or N/h with N > 0 (e.g. 50/s)")
    return Rate(value, _PERIODS[period.strip().lower()])


_GCRA = """
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + interval * tonumber(ARGV[4] or '1')
if after - now > capacity and ARGV[5] ~= '1' then
  return {0, 0, math.ceil(after - capacity - now), math.ceil(tat - now)}
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[1], string.format('%.3f', after), 'PX', math.ceil(after - now) + 1000)
end
return {1, math.floor((capacity - (after - now)) / interval), 0, math.ceil(after - now)}
"""
"""GCRA in one atomic step: ``KEYS[1]`` holds the theoretical arrival time (ms, Redis's own
clock). ``ARGV``: ms per request, ms of burst capacity, 1 to take a slot (0 to only ask), the
requests it counts as (default 1), 1 to take them even past the capacity (a debit after the
fact: model tokens spent). Returns allowed, remaining, retry-after ms, ms until the bucket is
full again."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float
    reset_s: float
    """Until the full burst is available again."""

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` (IETF draft) and, when refused, ``Retry-After``."""
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining),
               "RateLimit-Reset": str(max(1, math.ceil(self.reset_s)))}
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return out


class RateLimiter:
    """Token buckets in Redis shared by every API process; ``None`` when Redis cannot answer
    (the caller fails open)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._script = client.register_script(_GCRA)
        self.prefix = prefix

    async def hit(self, bucket: str, rate: Rate, burst: int, take: bool = True,
                  cost: float = 1, force: bool = False) -> Verdict:
        """Take one request (``cost`` of them) from ``bucket``, or, ``take=False``, only ask
        whether one would be allowed; ``force`` takes them even past the burst (the bucket
        then refuses until it has refilled). Raises what the Redis client raises."""
        interval_ms = 1000.0 / rate.per_second
        allowed, remaining, retry_ms, reset_ms = await self._script(
            keys=[f"{self.prefix}{bucket}"],
            args=[interval_ms, interval_ms * max(1, burst), "1" if take else "0", cost,
                  "1" if force else "0"])
        return Verdict(bool(allowed), max(1, burst), int(remaining), int(retry_ms) / 1000,
                       int(reset_ms) / 1000)
