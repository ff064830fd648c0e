"""The load generator's own API key: made through ``/v1/admin/keys`` with the operator's key
when none is given, with limits far above the load it sends (it measures the system, not the
tenant limits), and revoked when the run ends."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx

LOAD_KEY_LIMITS = {"rate_limit": "100000/s", "max_active_tasks": 10_000_000}


@contextlib.contextmanager
def load_key(url: str, given: str, operator_key: str) -> Iterator[str]:
    """``given`` when there is one; else a key of its own made with ``operator_key`` (an
    admin key, e.g. the development key of ``up``), revoked at the end; else ``""``."""
    if given or not operator_key:
        yield given
        return
    admin = {"Authorization": f"Bearer {operator_key}"}
    name = f"loadtest-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        made = httpx.post(f"{url}/v1/admin/keys", headers=admin, timeout=10,
                          json={"name": name, "tenant": "loadtest", **LOAD_KEY_LIMITS})
    except httpx.HTTPError:
        made = None
    if made is None or made.status_code != 201:  # not an admin key: load with it as it is
        yield operator_key
        return
    try:
        yield str(made.json()["key"])
    finally:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{url}/v1/admin/keys/{name}/revoke", headers=admin, timeout=10)
