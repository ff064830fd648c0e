"""``/v1/callbacks/secret``: the secret the caller's tenant's completion callbacks are signed
with, and its rotation."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.status_codes import HTTP_200_OK

from service.api.auth import request_key
from service.api.openapi import problems
from service.api.schemas import CallbackSecretOut
from service.api.state import Services
from service.db.callbacks import TenantSecret
from service.signing import SIGNATURE_HEADER


def _out(secret: TenantSecret) -> CallbackSecretOut:
    return CallbackSecretOut(secret.tenant, secret.secret, secret.previous_until,
                             SIGNATURE_HEADER)


class CallbacksController(Controller):
    path = "/v1/callbacks"
    tags = ["callbacks"]

    @get("/secret", opt={"scope": "tasks:write"}, responses=problems(),
         summary="The secret the tenant's callbacks are signed with",
         description="Made on first use. Verify a callback: HMAC-SHA256 with this secret of"
         " the Orchestrator-Signature header's t, a dot and the raw body equals one of its v1"
         " values, and t is recent.")
    async def secret(self, request: Request[Any, Any, Any]) -> CallbackSecretOut:
        services: Services = request.app.state.services
        tenant = request_key(request).tenant
        return _out((await services.callbacks.secrets([tenant]))[tenant])

    @post("/secret/rotate", status_code=HTTP_200_OK, opt={"scope": "tasks:write"},
          responses=problems(), summary="Rotate the tenant's callback secret",
          description="A new secret signs every callback from now; the previous one signs too"
          " for ORCH_CALLBACK_SECRET_OVERLAP_S (a day), so receivers can switch.")
    async def rotate(self, request: Request[Any, Any, Any]) -> CallbackSecretOut:
        services: Services = request.app.state.services
        tenant = request_key(request).tenant
        return _out(await services.callbacks.rotate(
            tenant, services.settings.callbacks.secret_overlap_s))
