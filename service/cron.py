"""Cron expressions for recurring schedules: checked, stepped in a schedule's time zone, and
the plan of one pass over a schedule that is due (what fires, what a missed-fire policy skips).

Five fields (minute hour day-of-month month day-of-week), as crontab(5) reads them, through
``cronsim``; a due time is computed in the schedule's zone (DST included) and kept in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

Missed = Literal["skip", "catch_up"]
MISSED: tuple[Missed, ...] = ("skip", "catch_up")
"""What a pass does with due times that passed while no scheduler ran: ``skip`` fires only the
latest, and only when it is at most the grace late; ``catch_up`` fires every one, oldest first."""
CATCH_UP_PER_PASS = 100
"""Due times one pass fires of one schedule catching up; the next pass goes on."""
_COUNT_SKIPPED_UP_TO = 10_000


class CronError(ValueError):
    """An expression or time zone that cannot be scheduled; the message says what to fix."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"time zone {name!r} is unknown: use an IANA name such as UTC or"
                        " Europe/Berlin") from exc


def check(expr: str, timezone: str = "UTC") -> None:
    """Raise ``CronError`` unless ``expr`` has due times in ``timezone``."""
    next_due(expr, timezone, datetime.now(UTC))


def next_due(expr: str, timezone: str, after: datetime) -> datetime:
    """The first due time strictly after ``after``, in UTC."""
    tz = zone(timezone)
    try:
        return next(CronSim(expr, after.astimezone(tz))).astimezone(UTC)
    except CronSimError as exc:
        raise CronError(f"cron {expr!r}: {exc} (five fields: minute hour day-of-month month"
                        " day-of-week, e.g. '*/5 * * * *')") from exc
    except StopIteration as exc:
        raise CronError(f"cron {expr!r} never comes due") from exc


def _latest_due(expr: str, timezone: str, at: datetime) -> datetime:
    """The last due time at or before ``at``, in UTC."""
    tz = zone(timezone)
    probe = (at + timedelta(microseconds=1)).astimezone(tz)
    return next(CronSim(expr, probe, reverse=True)).astimezone(UTC)


@dataclass(frozen=True)
class Plan:
    """One pass over a due schedule: the due times to fire, how many were skipped, and the
    next due time to wait for (in the past when a catch-up has more to fire)."""

    fire: list[datetime]
    skipped: int
    next_due_at: datetime


def plan(expr: str, timezone: str, next_due_at: datetime, now: datetime, missed: Missed,
         grace_s: float) -> Plan:
    """What to do with a schedule whose ``next_due_at`` has come (``next_due_at <= now``)."""
    if missed == "catch_up":
        fire: list[datetime] = []
        due = next_due_at
        while due <= now and len(fire) < CATCH_UP_PER_PASS:
            fire.append(due)
            due = next_due(expr, timezone, due)
        return Plan(fire, 0, due)
    latest = max(_latest_due(expr, timezone, now), next_due_at)
    fire = [latest] if (now - latest).total_seconds() <= grace_s else []
    passed, due = 0, next_due_at
    while due < latest and passed < _COUNT_SKIPPED_UP_TO:
        passed, due = passed + 1, next_due(expr, timezone, due)
    return Plan(fire, passed + (0 if fire else 1), next_due(expr, timezone, now))
