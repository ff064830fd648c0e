"""``/v1/admin/keys``: the API keys, for admin keys (``orchestrator keys`` over HTTP)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from service.api.openapi import documented, problems
from service.api.state import Services
from service.db.keys import (
    LABEL_PATTERN,
    MAX_ACTIVE_TASKS,
    MAX_EXPIRES_IN_S,
    ApiKey,
    KeySpec,
    KeyStore,
)
from service.ratelimit import RATE_PATTERN
from service.scopes import DEFAULT_SCOPES, SCOPES

Label = Annotated[str, msgspec.Meta(pattern=LABEL_PATTERN)]
NameInPath = Annotated[str, Parameter(schema_extra={"pattern": LABEL_PATTERN})]


class CreateKey(msgspec.Struct, forbid_unknown_fields=True):
    """A new key; ``tenant`` empty: a tenant of its own, named as the key."""

    name: Label
    scopes: Annotated[list[str], documented(
        items={"type": "string", "enum": list(SCOPES)}, min_items=1)] = (
        msgspec.field(default_factory=lambda: list(DEFAULT_SCOPES)))
    """At least one of ``SCOPES``: the document says so, ``KeySpec`` answers 422 naming them."""
    tenant: Label | None = None
    expires_in_s: Annotated[float, msgspec.Meta(gt=0, le=MAX_EXPIRES_IN_S)] | None = None
    rate_limit: Annotated[str, msgspec.Meta(pattern=RATE_PATTERN,
                                            description="e.g. 50/s, 600/min")] | None = None
    max_active_tasks: Annotated[int, msgspec.Meta(ge=1, le=MAX_ACTIVE_TASKS)] | None = None


class KeyOut(msgspec.Struct):
    name: str
    tenant: str
    scopes: list[str]
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None
    rate_limit: str | None
    max_active_tasks: int | None
    key: str | None = None
    """The key's value: only in the answer that created it."""

    @classmethod
    def of(cls, key: ApiKey, value: str | None = None) -> KeyOut:
        return cls(**key.as_json(), key=value)


class KeyList(msgspec.Struct):
    keys: list[KeyOut]


def _store(request: Request[Any, Any, Any]) -> KeyStore:
    services: Services = request.app.state.services
    return services.keys.store


class KeysController(Controller):
    path = "/v1/admin/keys"
    tags = ["admin"]
    opt = {"scope": "admin"}

    @get("/", summary="The live keys (never their values); all=true adds revoked ones",
         responses=problems())
    async def list_keys(self, request: Request[Any, Any, Any], all: bool = False) -> KeyList:
        return KeyList([KeyOut.of(k) for k in await _store(request).list(include_revoked=all)])

    @post("/", status_code=HTTP_201_CREATED, summary="Create a key; its value is shown once",
          responses=problems(409, 413, 415, 422))
    async def create_key(self, request: Request[Any, Any, Any], data: CreateKey) -> KeyOut:
        value, key = await _store(request).create(KeySpec(
            data.name, tuple(data.scopes), data.tenant, data.expires_in_s, data.rate_limit,
            data.max_active_tasks))
        return KeyOut.of(key, value)

    @post("/{name:str}/revoke", status_code=HTTP_200_OK, responses=problems(404),
          summary="Revoke a key: every API process refuses it within ORCH_KEY_CACHE_TTL_S")
    async def revoke_key(self, request: Request[Any, Any, Any], name: NameInPath) -> KeyOut:
        return KeyOut.of(await _store(request).revoke(name))

    @post("/{name:str}/rotate", status_code=HTTP_200_OK, responses=problems(404),
          summary="A new value for a key (same tenant, scopes and limits); the old one stops")
    async def rotate_key(self, request: Request[Any, Any, Any], name: NameInPath) -> KeyOut:
        value, key = await _store(request).rotate(name)
        return KeyOut.of(key, value)
