"""API keys: generated once, stored only as a SHA-256 digest, with a name and scopes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from service.db.migrate import migrated_pool
from service.db.query import Store
from service.settings import DatabaseSettings

KEY_PREFIX = "orch_"
DEFAULT_SCOPES = ("tasks:write", "tasks:read")


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    scopes: tuple[str, ...]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore(Store):

    async def create(self, name: str, scopes: tuple[str, ...] = DEFAULT_SCOPES,
                     key: str | None = None) -> tuple[str, ApiKey]:
        """Store a key (a new random one unless given) and return it in clear, once."""
        key = key or generate_key()
        row = await self.fetch_one(
            "key_create",
            "INSERT INTO api_keys (name, key_hash, scopes) VALUES (%s, %s, %s)"
            " ON CONFLICT (key_hash) DO UPDATE SET revoked_at = NULL RETURNING id, name, scopes",
            (name, digest(key), list(scopes)))
        assert row is not None
        return key, ApiKey(row["id"], row["name"], tuple(row["scopes"]))

    async def lookup(self, key: str) -> ApiKey | None:
        """The live key with this value, or ``None``."""
        row = await self.fetch_one(
            "key_lookup",
            "SELECT id, name, scopes FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL",
            (digest(key),))
        return ApiKey(row["id"], row["name"], tuple(row["scopes"])) if row else None


async def provision_key(database: DatabaseSettings, name: str,
                        scopes: tuple[str, ...] = DEFAULT_SCOPES, key: str | None = None) -> str:
    """Store a key in the configured database (creating and migrating it first); return the
    key in clear (``keys create``, the development key of ``up``, benchmark deployments)."""
    async with migrated_pool(database, "keys") as pool:
        value, _ = await KeyStore(pool).create(name, scopes, key)
        return value
