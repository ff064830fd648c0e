"""The metric catalog: every metric defined once, as an object. Alerts and dashboards import these.

Label vocabulary: ``agent``, ``queue``, ``outcome``, ``route``, ``method``, ``status``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

NAMESPACE = "orchestrator"

TASKS_SUBMITTED = Counter("tasks_submitted", "Tasks accepted by the API.", ["agent"],
                          namespace=NAMESPACE)
TASKS_STARTED = Counter("tasks_started", "Task attempts started by workers.", ["agent"],
                        namespace=NAMESPACE)
TASKS_SUCCEEDED = Counter("tasks_succeeded", "Tasks that finished successfully.", ["agent"],
                          namespace=NAMESPACE)
TASKS_FAILED = Counter("tasks_failed", "Task attempts that raised or timed out.", ["agent"],
                       namespace=NAMESPACE)
TASKS_RETRIED = Counter("tasks_retried", "Retries scheduled after a failed attempt.", ["agent"],
                        namespace=NAMESPACE)
TASKS_DEAD_LETTERED = Counter("tasks_dead_lettered",
                              "Tasks that went dead (retries exhausted or non-retryable).",
                              ["agent"], namespace=NAMESPACE)
TASKS_CANCELLED = Counter("tasks_cancelled", "Tasks cancelled on request.", ["agent"],
                          namespace=NAMESPACE)
DUPLICATE_DELIVERIES = Counter("duplicate_deliveries",
                               "Deliveries of a task that was finished or owned by another run;"
                               " dropped.", ["agent"], namespace=NAMESPACE)
TASKS_IN_PROGRESS = Gauge("tasks_in_progress", "Tasks running in this process.", ["agent"],
                          namespace=NAMESPACE, multiprocess_mode="livesum")
RUN_DURATION = Histogram(
    "task_run_duration_seconds", "Time an agent spent on one attempt.", ["agent"],
    namespace=NAMESPACE,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
             1200, 1800),
)
OUTBOX_PUBLISH_FAILURES = Counter("outbox_publish_failures",
                                  "Outbox messages the broker did not confirm.",
                                  namespace=NAMESPACE)
OUTBOX_PUBLISHED = Counter("outbox_published", "Outbox messages confirmed by the broker.",
                           namespace=NAMESPACE)
