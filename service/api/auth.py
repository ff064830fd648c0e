"""API-key authentication for ``/v1``: ``Authorization: Bearer <key>``, with the tenant's
rate limit and the failed-authentication limit of the client address."""

from __future__ import annotations

import time

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from service.db.keys import ApiKey, KeyStore, digest


class KeyCache:
    """Key look-ups cached in the process for ``ttl_s`` (``ORCH_KEY_CACHE_TTL_S``, 1 s): a
    revoked or expired key stops working in every API process within that time."""

    def __init__(self, store: KeyStore, ttl_s: float = 1.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[ApiKey | None, float]] = {}

    async def lookup(self, key: str) -> ApiKey | None:
        slot = digest(key)
        cached = self._entries.get(slot)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await self.store.lookup(key)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[slot] = (found, now + self.ttl_s)
        return found


async def require_api_key(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Guard: a valid key with the scope the route asks for (``opt={"scope": ...}``)."""
    services = connection.app.state.services
    address = connection.client.host if connection.client else "unknown"
    await services.limits.refuse_blocked(address)
    try:
        found = await _authenticate(connection.headers.get("authorization"), services.keys)
    except NotAuthorizedException:
        await services.limits.failed_authentication(address)
        raise
    scope = handler.opt.get("scope")
    if scope and not found.may(scope):
        raise PermissionDeniedException(f"API key {found.name!r} lacks the scope {scope!r}")
    await services.limits.admit(found)
    connection.state.api_key = found


def request_key(connection: ASGIConnection) -> ApiKey:  # type: ignore[type-arg]
    """The key the guard admitted (every ``/v1`` route has one)."""
    key: ApiKey = connection.state.api_key
    return key


def actor(connection: ASGIConnection) -> str:  # type: ignore[type-arg]
    """Who acted, as the timeline names them."""
    return f"api-key:{request_key(connection).name}"


async def _authenticate(header: str | None, keys: KeyCache) -> ApiKey:
    if not header:
        raise NotAuthorizedException(
            "missing API key: send 'Authorization: Bearer <key>' (create one with"
            " 'orchestrator keys create NAME')")
    key = bearer_key(header)
    if key is None:
        raise NotAuthorizedException("malformed Authorization header: use 'Bearer <key>'")
    found = await keys.lookup(key)
    if found is None:
        raise NotAuthorizedException("invalid, revoked or expired API key")
    return found


def bearer_key(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (``None`` for any other)."""
    scheme, _, key = (header or "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" and key.strip() else None
