"""What one tenant may do: its request rate, its unfinished tasks, and the failed
authentications of one client address. Refusals are 429 with ``Retry-After`` and
``RateLimit-*``; when Redis cannot answer the rate limits fail open (counted and logged) and
``/health/ready`` says so."""

from __future__ import annotations

import math
import time

from loguru import logger

from catalog import metrics
from service.cache import Cache
from service.db.keys import ApiKey
from service.db.task_stats import TaskStats
from service.errors import TooManyRequests
from service.ratelimit import Rate, RateLimiter, Verdict, parse_rate
from service.settings import LimitSettings

_WARN_EVERY_S = 60.0


class TenantLimits:
    def __init__(self, settings: LimitSettings, cache: Cache, stats: TaskStats,
                 refresh_s: float = 1.0) -> None:
        self.settings = settings
        self.cache = cache
        self.limiter = RateLimiter(cache.client, cache.keys.prefix + "ratelimit:")
        self.default_rate = parse_rate(settings.rate)
        self.auth_rate = parse_rate(settings.auth_failures)
        self.stats = stats
        self.refresh_s = refresh_s
        self._active: dict[str, int] = {}
        self._active_at = -math.inf
        self._rates: dict[str, Rate] = {}
        self.failing_open_since: float | None = None
        self._warned_at = -math.inf
        self._refused = {limit: metrics.RATE_LIMITED.labels(limit)
                         for limit in ("rate", "active_tasks", "auth_failures")}

    # --- request rate, per tenant --------------------------------------------------------------

    async def admit(self, key: ApiKey) -> Verdict | None:
        """Take one request of the key's tenant; raises TooManyRequests when over its rate."""
        rate, burst = self._rate_of(key)
        verdict = await self._hit(f"tenant:{key.tenant}", rate, burst)
        if verdict is not None and not verdict.allowed:
            self._refused["rate"].inc()
            raise TooManyRequests(
                f"tenant {key.tenant!r} is over its rate limit of {rate}; retry after"
                f" {verdict.headers()['Retry-After']} s", verdict.headers())
        return verdict

    def _rate_of(self, key: ApiKey) -> tuple[Rate, int]:
        if not key.rate_limit:
            return self.default_rate, self.settings.burst
        rate = self._rates.get(key.rate_limit) or parse_rate(key.rate_limit)
        self._rates[key.rate_limit] = rate
        return rate, max(1, math.ceil(2 * rate.per_second))  # two seconds' worth

    # --- failed authentications, per client address -------------------------------------------

    async def refuse_blocked(self, address: str) -> None:
        """Raises TooManyRequests while ``address`` is over its failed-authentication limit."""
        verdict = await self._hit(f"auth:{address}", self.auth_rate, self._auth_burst, take=False)
        if verdict is not None and not verdict.allowed:
            self._refused["auth_failures"].inc()
            raise TooManyRequests(
                f"too many failed authentications from {address}; retry after"
                f" {verdict.headers()['Retry-After']} s", verdict.headers())

    async def failed_authentication(self, address: str) -> None:
        await self._hit(f"auth:{address}", self.auth_rate, self._auth_burst)

    @property
    def _auth_burst(self) -> int:
        return max(1, math.ceil(self.auth_rate.count))

    # --- unfinished tasks, per tenant ----------------------------------------------------------

    async def admit_task(self, key: ApiKey) -> None:
        """Raises TooManyRequests when the tenant has its cap of unfinished tasks (counted
        at most every ``refresh_s``, so a burst may pass the cap by what it submits then)."""
        cap = key.max_active_tasks or self.settings.max_active_tasks
        now = time.monotonic()
        if now - self._active_at >= self.refresh_s:
            self._active_at = now
            self._active = await self.stats.active_by_tenant()
        if self._active.get(key.tenant, 0) >= cap:
            self._refused["active_tasks"].inc()
            raise TooManyRequests(
                f"tenant {key.tenant!r} has {self._active[key.tenant]} unfinished tasks, its"
                f" cap is {cap}; retry when some have finished",
                {"Retry-After": str(max(1, math.ceil(self.refresh_s)))})

    # --- Redis ----------------------------------------------------------------------------------

    async def _hit(self, bucket: str, rate: Rate, burst: int,
                   take: bool = True) -> Verdict | None:
        if self.cache.available:
            try:
                verdict = await self.limiter.hit(bucket, rate, burst, take)
            except Exception as exc:
                self.cache.mark_down(exc)
            else:
                self.failing_open_since = None
                return verdict
        metrics.RATE_LIMITER_FAIL_OPEN.inc()
        now = time.monotonic()
        if self.failing_open_since is None:
            self.failing_open_since = now
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            logger.warning("rate limits are not enforced: Redis cannot answer ({});"
                           " requests are let through", self.cache.last_error)
        return None
