"""API-key authentication for ``/v1``: ``Authorization: Bearer <key>``."""

from __future__ import annotations

import time

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from service.db.keys import ApiKey, KeyStore, digest


class KeyCache:
    """Key look-ups cached in the process (valid keys 30 s, unknown ones 5 s)."""

    def __init__(self, store: KeyStore, ttl_s: float = 30.0, negative_ttl_s: float = 5.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._entries: dict[str, tuple[ApiKey | None, float]] = {}

    async def lookup(self, key: str) -> ApiKey | None:
        slot = digest(key)
        cached = self._entries.get(slot)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await self.store.lookup(key)
        ttl = self.ttl_s if found else self.negative_ttl_s
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[slot] = (found, now + ttl)
        return found


async def require_api_key(connection: ASGIConnection, handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    """Guard: a valid key with the scope the route asks for (``opt={"scope": ...}``)."""
    header = connection.headers.get("authorization")
    if not header:
        raise NotAuthorizedException(
            "missing API key: send 'Authorization: Bearer <key>' (create one with"
            " 'orchestrator keys create NAME')")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException("malformed Authorization header: use 'Bearer <key>'")
    found = await connection.app.state.services.keys.lookup(key.strip())
    if found is None:
        raise NotAuthorizedException("invalid or revoked API key")
    scope = handler.opt.get("scope")
    if scope and scope not in found.scopes:
        raise PermissionDeniedException(f"API key {found.name!r} lacks the scope {scope!r}")
    connection.state.api_key = found
