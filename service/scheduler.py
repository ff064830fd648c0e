"""The scheduler: fires recurring schedules, in every API process, each due time exactly once.

A pass locks the due schedules (``FOR UPDATE SKIP LOCKED``: passes in other processes take
other rows or none), plans each with its missed-fire policy (``service.cron.plan``), and in the
same transaction creates the tasks, records each due time in ``schedule_fires`` (whose key
refuses a second fire of one due time) and moves ``next_due_at`` on. The outbox publishes the
tasks like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from loguru import logger

from catalog import metrics
from service import cron
from service.db.schedules import ScheduleStore
from service.domain import Task
from service.periodic import Periodic

FORGET_FIRES_EVERY_S = 3600.0
FIRES_KEPT_S = 7 * 86400.0
"""How long the record of a fire is kept (a due time that far back never comes again)."""
PER_PASS = 50


class Scheduler:
    """One loop per API process."""

    def __init__(self, store: ScheduleStore, *, interval_s: float, grace_s: float,
                 on_fired: Callable[[], None]) -> None:
        self.store = store
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.on_fired = on_fired
        self._periodic = Periodic("scheduler", interval_s, self._pass)
        self._forgot_at = 0.0
        for outcome in ("fired", "skipped"):
            metrics.SCHEDULE_FIRES.labels(outcome)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _pass(self) -> None:
        await self.run_once()
        if time.monotonic() - self._forgot_at > FORGET_FIRES_EVERY_S:
            self._forgot_at = time.monotonic()
            await self.store.forget_fires(FIRES_KEPT_S)

    async def run_once(self) -> list[Task]:
        """One pass: the tasks it created (a schedule catching up may fire several)."""
        created: list[Task] = []
        skipped = 0
        async with self.store.due(PER_PASS) as batch:
            for schedule in batch.schedules:
                try:
                    plan = cron.plan(schedule["cron"], schedule["timezone"],
                                     schedule["next_due_at"], schedule["now"],
                                     schedule["missed"], self.grace_s)
                except cron.CronError as exc:  # stored before a rule changed: say so, go on
                    logger.bind(schedule=schedule["name"]).error("schedule skipped: {}", exc)
                    continue
                log = logger.bind(schedule=schedule["name"])
                fired = []
                for due in plan.fire:
                    if (task := await batch.fire(schedule, due)) is not None:
                        fired.append(task)
                        log.bind(task_id=task.id).info("schedule {} fired for {}",
                                                       schedule["name"], due.isoformat())
                await batch.advance(schedule, plan.next_due_at, fired, plan.fire, plan.skipped)
                if plan.skipped:
                    log.warning("schedule {} skipped {} due times missed while no scheduler"
                                " ran (its policy is skip)", schedule["name"], plan.skipped)
                created += fired
                skipped += plan.skipped
        if created:
            metrics.SCHEDULE_FIRES.labels("fired").inc(len(created))
            for task in created:
                metrics.TASKS_SUBMITTED.labels(task.agent).inc()
            self.on_fired()
        if skipped:
            metrics.SCHEDULE_FIRES.labels("skipped").inc(skipped)
        return created
