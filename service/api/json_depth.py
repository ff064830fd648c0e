"""Request bodies that are not ``application/json`` get a 415, and bodies nested deeper than
``ORCH_MAX_JSON_DEPTH`` a 400, before any decoder sees them: msgspec and ``json`` recurse per
level and fail with ``RecursionError`` (a 500, an ERROR line and a 5xx alert) near a thousand
levels.

The body is read once, within the body size limit, and kept for the handler (Litestar caches
it in the scope); its depth is measured by ``service.json_nesting`` at C speed.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from service.json_nesting import nesting_exceeds

__all__ = ["JsonDepthLimit"]

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})


class JsonDepthLimit(ASGIMiddleware):
    """Answer 400 to a request whose body nests arrays and objects deeper than ``max_depth``."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     next_app: ASGIApp) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] not in _NO_BODY:
            request = Request[Any, Any, Any](scope, receive)
            body = await request.body()  # kept for the handler
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if body and not (media == "application/json" or media.endswith("+json")):
                raise HTTPException(
                    status_code=415, detail=f"request body must be JSON: send it with"
                    f" 'Content-Type: application/json' (got {media or 'none'!r})")
            if nesting_exceeds(body, self.max_depth):
                raise ClientException(
                    f"request body has nesting deeper than {self.max_depth} levels of arrays"
                    " and objects (ORCH_MAX_JSON_DEPTH on the server); send flatter JSON, or"
                    " the deep part as a string")
        await next_app(scope, receive, send)
