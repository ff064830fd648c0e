"""Arrival-rate profiles of the open-model load generator, and the schedule they produce.

A profile is a rate over time r(t); the k-th request (k = 0, 1, ...) is due when the expected
number of arrivals reaches k, i.e. at the t where the integral of r from 0 to t equals k. The
schedule is a list of these intended send times (seconds from the start of the run), fixed in
advance: a request is sent at its time whatever happened to the ones before it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


class Profile(Protocol):
    """An arrival rate that changes over time."""

    def rate_at(self, t: float) -> float:
        """Requests per second at ``t`` seconds into the run."""
        ...

    def time_of(self, k: int) -> float | None:
        """When request number ``k`` is due (None: never, the rate stays at zero)."""
        ...

    def describe(self) -> str:
        """One line for people (progress, reports)."""
        ...


@dataclass(frozen=True)
class Constant:
    """``rate`` requests per second, evenly spaced."""

    rate: float

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("the rate must be above 0")

    def rate_at(self, t: float) -> float:
        return self.rate

    def time_of(self, k: int) -> float | None:
        return k / self.rate

    def describe(self) -> str:
        return f"constant {self.rate:g}/s"


@dataclass(frozen=True)
class Ramp:
    """From ``start`` to ``end`` requests per second, linearly over ``duration_s``; ``end``
    after that."""

    start: float
    end: float
    duration_s: float

    def __post_init__(self) -> None:
        if self.start < 0 or self.end <= 0 or self.duration_s <= 0:
            raise ValueError("a ramp needs start >= 0, end > 0 and a duration above 0")

    @property
    def slope(self) -> float:
        return (self.end - self.start) / self.duration_s

    def rate_at(self, t: float) -> float:
        return self.start + self.slope * min(t, self.duration_s)

    def time_of(self, k: int) -> float | None:
        # arrivals by t (t <= duration): start*t + slope*t^2/2 = k
        ramp_total = (self.start + self.end) / 2 * self.duration_s
        if k > ramp_total:
            return self.duration_s + (k - ramp_total) / self.end
        if abs(self.slope) < 1e-12:
            return k / self.start
        disc = self.start**2 + 2 * self.slope * k
        # the numerically stable root of slope/2 t^2 + start t - k = 0
        return 2 * k / (self.start + math.sqrt(max(disc, 0.0))) if k else 0.0

    def describe(self) -> str:
        return f"ramp {self.start:g}/s -> {self.end:g}/s over {self.duration_s:g}s"


@dataclass(frozen=True)
class Steps:
    """``start`` requests per second, plus ``step`` every ``every_s`` seconds (up to
    ``maximum``, when given)."""

    start: float
    step: float
    every_s: float
    maximum: float | None = None

    def __post_init__(self) -> None:
        if self.start <= 0 or self.every_s <= 0 or self.start + self.step <= 0:
            raise ValueError("steps need a start rate above 0, a stage length above 0 and"
                             " rates that stay above 0")

    def stage_rate(self, stage: int) -> float:
        rate = max(self.start + self.step * stage, 0.0)
        return min(rate, self.maximum) if self.maximum is not None else rate

    def rate_at(self, t: float) -> float:
        return self.stage_rate(int(t // self.every_s))

    def time_of(self, k: int) -> float | None:
        stage, before = 0, 0.0  # arrivals before the stage starts
        while True:
            rate = self.stage_rate(stage)
            in_stage = rate * self.every_s
            if rate > 0 and k < before + in_stage - 1e-9:  # a boundary is the next stage's
                return stage * self.every_s + (k - before) / rate
            if rate <= 0 and stage > 0 and self.step <= 0:
                return None
            before += in_stage
            stage += 1

    def describe(self) -> str:
        top = f", up to {self.maximum:g}/s" if self.maximum is not None else ""
        return f"steps {self.start:g}/s {self.step:+g}/s every {self.every_s:g}s{top}"


def schedule(profile: Profile, duration_s: float | None,
             max_requests: int | None) -> Iterator[float]:
    """Intended send times (seconds from the start), bounded by the duration (exclusive) and/or
    the request count; at least one bound is required."""
    if duration_s is None and max_requests is None:
        raise ValueError("bound the run: give a duration, a request count, or both")
    k = 0
    while max_requests is None or k < max_requests:
        t = profile.time_of(k)
        if t is None or (duration_s is not None and t >= duration_s):
            return
        yield t
        k += 1


def expected_requests(profile: Profile, duration_s: float | None,
                      max_requests: int | None) -> int:
    """How many requests :func:`schedule` yields (counted, not estimated)."""
    return sum(1 for _ in schedule(profile, duration_s, max_requests))
