"""Retention: finished tasks older than their status's retention are deleted with their
timelines, in batches of ``batch`` tasks, each batch its own short transaction (rows locked by
another purger are skipped, not waited for), so submissions never queue behind a purge."""

from __future__ import annotations

from loguru import logger

from catalog import metrics
from service.db.dead_letters import DeadLetterStore
from service.db.query import Store
from service.domain import TaskStatus
from service.periodic import Periodic
from service.retention import RETAINED, RetentionPolicy

DEAD_LETTERS = "dead_letters"
"""The key of ``RetentionJob.run_once``'s answer for the dead-letter record."""
_DUE = ("status = %(status)s AND finished_at IS NOT NULL"
        " AND finished_at < now() - make_interval(secs => %(age_s)s)")
_PURGE = (f"WITH doomed AS (SELECT id FROM tasks WHERE {_DUE} ORDER BY finished_at"
          " LIMIT %(batch)s FOR UPDATE SKIP LOCKED)"
          " DELETE FROM tasks USING doomed WHERE tasks.id = doomed.id")
_COUNT = f"SELECT count(*) AS n FROM tasks WHERE {_DUE}"


class RetentionStore(Store):
    async def due(self, status: TaskStatus, age_s: float) -> int:
        """How many ``status`` tasks finished more than ``age_s`` ago."""
        row = await self.fetch_one("retention_due", _COUNT,
                                   {"status": status.value, "age_s": age_s})
        return int(row["n"]) if row else 0

    async def purge(self, status: TaskStatus, age_s: float, batch: int = 1000,
                    pause_s: float = 0.0) -> int:
        """Delete them, ``batch`` at a time (``pause_s`` between batches); how many went."""
        return await self.delete_in_batches(
            "retention_purge", _PURGE, {"status": status.value, "age_s": age_s}, batch, pause_s,
            on_batch=metrics.TASKS_PURGED.labels(status.value).inc)


class RetentionJob:
    """Applies the policy every ``interval_s`` in the background of an API process."""

    def __init__(self, store: RetentionStore, policy: RetentionPolicy, interval_s: float,
                 batch: int) -> None:
        self.store, self.policy = store, policy
        self.interval_s, self.batch = interval_s, batch
        self._periodic = Periodic("retention", interval_s, self.run_once)
        for status in RETAINED:  # exposed from the start, at 0
            metrics.TASKS_PURGED.labels(status.value)

    async def run_once(self) -> dict[str, int]:
        """One pass; how many tasks of each final status went, and how many dead letters
        (kept as long as dead tasks: those of a task go with it, orphans and replayed ones
        by age)."""
        purged: dict[str, int] = {}
        for status, age_s in self.policy.ages_s.items():
            if age_s is not None:
                purged[status.value] = await self.store.purge(status, age_s, self.batch,
                                                              pause_s=0.05)
        if any(purged.values()):
            logger.info("retention deleted {} finished tasks ({})", sum(purged.values()),
                        ", ".join(f"{s} {n}" for s, n in purged.items() if n))
        dead_age_s = self.policy.ages_s.get(TaskStatus.DEAD)
        if dead_age_s is not None:
            letters = await DeadLetterStore(self.store.pool).purge(dead_age_s, self.batch)
            if letters:
                logger.info("retention deleted {} dead letters", letters)
            purged[DEAD_LETTERS] = letters
        return purged

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
