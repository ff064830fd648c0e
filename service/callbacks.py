"""Completion callbacks, delivered by every API process: each pass claims the due deliveries
(``service.db.callbacks``), POSTs each final task to its ``callback_url``, signed with its
tenant's secret (``service.signing``), to an address the SSRF guard allowed
(``service.callback_target``), and records the outcome on the task's timeline; a failed
delivery is tried again with exponential backoff until ``ORCH_CALLBACK_MAX_ATTEMPTS``."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from loguru import logger

from catalog import metrics
from service.callback_target import CallbackRefused, Target, resolve
from service.db.callbacks import CallbackStore, TenantSecret
from service.domain import Task, json_text
from service.periodic import Periodic
from service.settings import CallbackSettings
from service.signing import SIGNATURE_HEADER, sign
from service.telemetry.scrub import error_text

BATCH = 50
LEASE_EXTRA_S = 30.0
"""A claimed delivery is another process's after the timeout and this long."""
DELIVERY_HEADER = "Orchestrator-Delivery"
EVENT_HEADER = "Orchestrator-Event"
USER_AGENT = "orchestrator-callbacks/1"


def payload(task: Task, shown: Any) -> dict[str, Any]:
    """What a callback carries: the event, the delivery's id (the same on every retry of
    it: receivers drop repeats by it) and the task ``shown`` as ``GET /v1/tasks/{id}`` shows
    it."""
    return {"event": f"task.{task.status.value}", "delivery_id": delivery_id(task),
            "task": shown}


def delivery_id(task: Task) -> str:
    """The task and when it ended: the same for every try, new when a requeued task ends
    again."""
    ended = task.finished_at or task.updated_at
    return f"{task.id}.{int(ended.timestamp() * 1_000_000)}"


def retry_delay_s(attempt: int, settings: CallbackSettings) -> float:
    """The wait after failed attempt ``attempt`` (1 first): doubling, capped, jittered."""
    base = min(settings.max_delay_s, settings.base_delay_s * 2 ** (attempt - 1))
    return float(base * random.uniform(0.8, 1.2))


def shown_url(url: str | None) -> str:
    """The URL without its query (which may hold a token) for the timeline and the logs."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class CallbackDispatcher:
    """Delivers due callbacks every ``interval_s``, a batch at a time."""

    def __init__(self, store: CallbackStore, settings: CallbackSettings,
                 show: Callable[[Task], Any],
                 recorded: Callable[[Task], None] = lambda task: None) -> None:
        self.store = store
        self.settings = settings
        self.show = show
        """The task as the API shows it."""
        self.recorded = recorded
        """Told each task whose callback state changed (the status cache)."""
        self.client = httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=False,
                                        trust_env=False)
        self._periodic = Periodic("callbacks", settings.interval_s, self.deliver_due)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        await self.client.aclose()

    async def deliver_due(self) -> int:
        """One pass: deliver what is due (a batch); how many were tried."""
        tasks = await self.store.claim_due(BATCH, self.settings.timeout_s + LEASE_EXTRA_S)
        if not tasks:
            return 0
        secrets = await self.store.secrets(sorted({t.tenant for t in tasks}))
        await asyncio.gather(*(self._deliver(t, secrets[t.tenant]) for t in tasks))
        return len(tasks)

    async def _deliver(self, task: Task, secret: TenantSecret) -> None:
        detail: dict[str, Any] = {"attempt": task.callback_attempts,
                                  "url": shown_url(task.callback_url)}
        try:
            target = await resolve(task.callback_url or "", self.settings.allow_private)
            status = await self._post(target, task, secret)
        except CallbackRefused as exc:
            metrics.CALLBACKS.labels("refused").inc()
            logger.warning("callback of task {} refused: {}", task.id, exc)
            self._recorded(await self.store.refused(task, {**detail, "error": str(exc)}))
            return
        except (OSError, httpx.HTTPError) as exc:
            await self._failed(task, {**detail, "error": error_text(exc, 500)})
            return
        if 200 <= status < 300:
            metrics.CALLBACKS.labels("delivered").inc()
            self._recorded(await self.store.delivered(task, {**detail, "http_status": status}))
        else:
            await self._failed(task, {**detail, "http_status": status,
                                      "error": f"the receiver answered HTTP {status}"})

    async def _post(self, target: Target, task: Task, secret: TenantSecret) -> int:
        body = json_text(payload(task, self.show(task))).encode()
        url = httpx.URL(target.url)
        pinned = url.copy_with(host=target.address)  # the address the guard checked
        headers = {"Host": url.netloc.decode(), "Content-Type": "application/json",
                   "User-Agent": USER_AGENT, DELIVERY_HEADER: delivery_id(task),
                   EVENT_HEADER: f"task.{task.status.value}",
                   SIGNATURE_HEADER: sign(body, secret.in_use)}
        started = time.perf_counter()
        try:
            response = await self.client.post(
                pinned, content=body, headers=headers,
                extensions={"sni_hostname": target.host} if url.scheme == "https" else {})
        finally:
            metrics.CALLBACK_DURATION.observe(time.perf_counter() - started)
        return response.status_code

    async def _failed(self, task: Task, detail: dict[str, Any]) -> None:
        attempt = task.callback_attempts
        if attempt >= self.settings.max_attempts:
            metrics.CALLBACKS.labels("failed").inc()
            logger.warning("callback of task {} given up after {} attempts: {}", task.id,
                           attempt, detail.get("error"))
            self._recorded(await self.store.give_up(task, {**detail, "given_up": True}))
            return
        delay_s = retry_delay_s(attempt, self.settings)
        metrics.CALLBACKS.labels("retried").inc()
        self._recorded(await self.store.retry(task, delay_s,
                                              {**detail, "retry_in_s": round(delay_s, 3)}))

    def _recorded(self, task: Task | None) -> None:
        if task is not None:
            self.recorded(task)
