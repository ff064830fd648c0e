"""Retry policy as data, and the one pure function that decides what a failure leads to."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from agents.errors import NonRetryableError


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped; some error types are never retried.

    ``max_attempts`` here is the agent's default; a task may ask for its own.
    """

    max_attempts: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 300.0
    jitter: float = 0.2
    non_retryable: tuple[type[BaseException], ...] = field(default=(NonRetryableError,))

    def backoff_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before the attempt after ``attempt`` (1-based): base * 2^(attempt-1), capped,
        then reduced by up to ``jitter`` (so retries of many tasks spread out)."""
        raw = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        spread: float = (rng.random() if rng else random.random()) * self.jitter
        return raw * (1 - spread)


@dataclass(frozen=True)
class Retry:
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    reason: str  # "non_retryable" or "exhausted"


def decide(attempt: int, max_attempts: int, error: BaseException, policy: RetryPolicy,
           rng: random.Random | None = None) -> Retry | GiveUp:
    """What a failed ``attempt`` of a task with ``max_attempts`` leads to."""
    if isinstance(error, policy.non_retryable):
        return GiveUp("non_retryable")
    if attempt >= max_attempts:
        return GiveUp("exhausted")
    return Retry(policy.backoff_s(attempt, rng))
