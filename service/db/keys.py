"""API keys: generated once, stored only as a SHA-256 digest, with a name (unique among live
keys), a tenant, scopes, an optional expiry and optional limits of their own."""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from service.db.migrate import migrated_pool
from service.db.query import Store
from service.errors import KeyProblem
from service.scopes import DEFAULT_SCOPES, DEV_SCOPES, SCOPES
from service.settings import DatabaseSettings

KEY_PREFIX = "orch_"
LABEL_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,100}$"
"""A key's name and a tenant: 1 to 100 characters, none of them a control character (a rule
the OpenAPI document can state exactly, unlike ``str.isprintable``)."""
MAX_EXPIRES_IN_S = 100 * 365.25 * 86400
MAX_ACTIVE_TASKS = 2**31 - 1
"""The largest per-key cap (the column is an ``integer``)."""

_COLUMNS = ("id, name, tenant, scopes, created_at, expires_at, revoked_at, last_used_at,"
            " rate_limit, max_active_tasks")


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    scopes: tuple[str, ...]
    tenant: str = ""
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    rate_limit: str | None = None
    max_active_tasks: int | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def may(self, scope: str) -> bool:
        """The key has ``scope``, or ``admin``, which implies every scope."""
        return scope in self.scopes or self.is_admin

    @property
    def visible_tenant(self) -> str | None:
        """The tenant whose tasks this key sees (``None``: every tenant's)."""
        return None if self.is_admin else self.tenant

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "tenant": self.tenant, "scopes": list(self.scopes),
                **{f: (getattr(self, f).isoformat() if getattr(self, f) else None)
                   for f in ("created_at", "expires_at", "revoked_at", "last_used_at")},
                "rate_limit": self.rate_limit, "max_active_tasks": self.max_active_tasks}


@dataclass(frozen=True)
class KeySpec:
    """What a new key gets (``keys create``, ``POST /v1/admin/keys``)."""

    name: str
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    tenant: str | None = None
    """Empty: the key is its own tenant (named as the key)."""
    expires_in_s: float | None = None
    rate_limit: str | None = None
    max_active_tasks: int | None = None

    def problems(self) -> list[str]:
        from service.ratelimit import RATE_PATTERN

        found = []
        if not re.fullmatch(LABEL_PATTERN, self.name):
            found.append("name must be 1 to 100 characters, none of them a control character")
        unknown = sorted(set(self.scopes) - set(SCOPES))
        if unknown:
            found.append(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
        if not self.scopes:
            found.append(f"give at least one scope of {', '.join(SCOPES)}")
        if self.tenant is not None and not re.fullmatch(LABEL_PATTERN, self.tenant):
            found.append("tenant must be 1 to 100 characters, none of them a control"
                         " character")
        if self.expires_in_s is not None and not 0 < self.expires_in_s <= MAX_EXPIRES_IN_S:
            found.append(f"expires-in must be positive and at most {MAX_EXPIRES_IN_S:.0f} s"
                         " (100 years)")
        if self.rate_limit is not None and not re.fullmatch(RATE_PATTERN,
                                                            self.rate_limit):
            found.append(f"rate {self.rate_limit!r} is not N/s, N/min or N/h with N > 0"
                         " (e.g. 50/s)")
        if self.max_active_tasks is not None and not (
                1 <= self.max_active_tasks <= MAX_ACTIVE_TASKS):
            found.append(f"max-active-tasks must be 1 to {MAX_ACTIVE_TASKS}")
        return found


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(**{**row, "scopes": tuple(row["scopes"])})


class KeyStore(Store):

    async def create(self, spec: KeySpec, key: str | None = None) -> tuple[str, ApiKey]:
        """Store a new key (a random one unless given) and return it in clear, once."""
        problems = spec.problems()
        if problems:
            raise KeyProblem("; ".join(problems))
        key = key or generate_key()
        expires = (None if spec.expires_in_s is None
                   else timedelta(seconds=spec.expires_in_s))
        try:
            row = await self.fetch_one(
                "key_create",
                "INSERT INTO api_keys (name, key_hash, scopes, tenant, expires_at, rate_limit,"
                " max_active_tasks) VALUES (%s, %s, %s, %s, now() + %s, %s, %s)"
                f" RETURNING {_COLUMNS}",
                (spec.name, digest(key), list(spec.scopes), spec.tenant or spec.name, expires,
                 spec.rate_limit, spec.max_active_tasks))
        except psycopg.errors.UniqueViolation as exc:
            what = ("that key value is taken (revoked keys are never revived)"
                    if "key_hash" in str(exc) else
                    f"a live key named {spec.name!r} exists: revoke or rotate it")
            raise KeyProblem(what, status=409) from None
        assert row is not None
        return key, _key(row)

    async def lookup(self, key: str) -> ApiKey | None:
        """The live, unexpired key with this value (recording its use), or ``None``."""
        row = await self.fetch_one(
            "key_lookup",
            "UPDATE api_keys SET last_used_at = now() WHERE key_hash = %s"
            " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
            f" RETURNING {_COLUMNS}", (digest(key),))
        return _key(row) if row else None

    async def list(self, include_revoked: bool = False) -> list[ApiKey]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        return [_key(row) for row in await self.fetch_all(
            "key_list", f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY name, id")]

    async def revoke(self, name: str) -> ApiKey:
        row = await self.fetch_one(
            "key_revoke", "UPDATE api_keys SET revoked_at = now() WHERE name = %s"
            f" AND revoked_at IS NULL RETURNING {_COLUMNS}", (name,))
        if row is None:
            raise KeyProblem(f"no live key named {name!r} (see 'orchestrator keys list')",
                             status=404)
        return _key(row)

    async def rotate(self, name: str) -> tuple[str, ApiKey]:
        """A new value for the key ``name`` (same tenant, scopes, expiry and limits); the
        old value stops working at once."""
        key = generate_key()
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL"
                " RETURNING scopes, tenant, expires_at, rate_limit, max_active_tasks", (name,))
            old = await cur.fetchone()
            if old is None:
                raise KeyProblem(f"no live key named {name!r} (see 'orchestrator keys list')",
                                 status=404)
            cur = await conn.execute(
                "INSERT INTO api_keys (name, key_hash, scopes, tenant, expires_at, rate_limit,"
                " max_active_tasks) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                f" RETURNING {_COLUMNS}",
                (name, digest(key), old["scopes"], old["tenant"], old["expires_at"],
                 old["rate_limit"], old["max_active_tasks"]))
            row = await cur.fetchone()
        assert row is not None
        return key, _key(row)

    async def ensure_dev(self, key: str) -> bool:
        """The local runner's development key, live with ``DEV_SCOPES``; ``False`` when that
        value was revoked (it is never revived: the runner makes a new one)."""
        row = await self.fetch_one(
            "key_dev", "SELECT revoked_at IS NOT NULL AS revoked FROM api_keys"
            " WHERE key_hash = %s", (digest(key),))
        if row is not None:
            if row["revoked"]:
                return False
            await self.run("key_dev_scopes", "UPDATE api_keys SET scopes = %s"
                           " WHERE key_hash = %s", (list(DEV_SCOPES), digest(key)))
            return True
        await self.run("key_dev_revoke", "UPDATE api_keys SET revoked_at = now()"
                       " WHERE name = 'dev' AND revoked_at IS NULL")  # an older dev key
        await self.create(KeySpec("dev", DEV_SCOPES, tenant="dev"), key)
        return True


async def provision_key(database: DatabaseSettings, spec: KeySpec) -> str:
    """A new key in the configured database (created and migrated first), replacing a live
    key of the same name; return it in clear (benchmark deployments, the load generator)."""
    async with migrated_pool(database, "keys") as pool:
        store = KeyStore(pool)
        with contextlib.suppress(KeyProblem):
            await store.revoke(spec.name)
        value, _ = await store.create(spec)
        return value


async def provision_dev_key(database: DatabaseSettings, key: str) -> bool:
    """``KeyStore.ensure_dev`` on the configured database (created and migrated first)."""
    async with migrated_pool(database, "keys") as pool:
        return await KeyStore(pool).ensure_dev(key)
