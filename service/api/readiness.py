"""Is the API at a URL up, and is it the server instance that was started? One probe for all
that start an API and wait for it: the supervisor, the benchmarks' deployments and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from service.errors import OrchestratorError

LIVE = "/health/live"
"""The process answers (no dependency is probed)."""
READY = "/health/ready"
"""PostgreSQL and RabbitMQ answer too."""


class ForeignServer(OrchestratorError):
    """Another server answers at the API's address."""

    def __init__(self, url: str, answered: object) -> None:
        super().__init__(f"{url} is answered by another server (instance {answered!r}), not the"
                         " API just started; pick another port: ORCH_API_PORT")


def answers(url: str, *, instance: str | None = None, path: str = READY,
            timeout_s: float = 2.0) -> bool:
    """True when the API at ``url`` answers ``path`` with 200; with ``instance``, only that
    server instance counts (another one answering is ``ForeignServer``)."""
    try:
        response = httpx.get(url + path, timeout=timeout_s)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return False
    if response.status_code != 200:
        return False
    if instance is not None:
        answered = body.get("instance") if isinstance(body, dict) else None
        if answered != instance:
            raise ForeignServer(url, answered)
    return True


def wait_until_answers(url: str, *, instance: str | None = None, path: str = READY,
                       timeout_s: float = 60, gone: Callable[[], bool] = lambda: False) -> bool:
    """Poll ``answers`` until it is true (True), or the time is up or ``gone()`` (False)."""
    deadline = time.monotonic() + timeout_s
    while not gone():
        if answers(url, instance=instance, path=path):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return False
