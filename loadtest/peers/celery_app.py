"""The Celery side of the peer benchmark: one no-op task and one that sleeps (a model call's
stand-in), acknowledged late, published with confirms. Its broker and result backend come from
``peers_config``, the module the benchmark writes for the round (``loadtest.peers.systems``)."""

from __future__ import annotations

import time
from typing import Any

import peers_config
from celery import Celery

app = Celery("peers", broker=peers_config.BROKER_URL, backend=peers_config.RESULT_BACKEND)
app.conf.update(
    broker_transport_options={"confirm_publish": True}, task_acks_late=True,
    worker_prefetch_multiplier=16, task_serializer="json", result_serializer="json",
    broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
    task_default_queue=peers_config.QUEUE, task_ignore_result=False,
    database_table_names={"task": "celery_taskmeta", "group": "celery_groupmeta"})


@app.task(name="peers.noop")  # type: ignore[untyped-decorator]
def noop(n: Any) -> Any:
    return n


@app.task(name="peers.sleep")  # type: ignore[untyped-decorator]
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
