"""``OPTIONS`` answers whose ``Allow`` names every method of the path.

Litestar 2 makes a path's ``OPTIONS`` handler when the path's first handler is registered and
keeps it when more handlers join the path, and that handler lists only the methods there were
then (``OPTIONS /v1/tasks`` said ``GET, OPTIONS``; litestar#4169, fixed in Litestar 3). This
hook answers such a request from the finished routes instead."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_204_NO_CONTENT

__all__ = ["answer_options"]


async def answer_options(request: Request[Any, Any, Any]) -> Response[None] | None:
    """A ``before_request`` hook: ``204`` with the path's methods for an ``OPTIONS`` request
    (the API has no ``OPTIONS`` handler of its own); ``None`` (carry on) for the others.

    A coroutine: Litestar runs a plain function hook in a thread, for every request."""
    if request.method != "OPTIONS":
        return None
    handler = request.route_handler
    for route in request.app.routes:
        if isinstance(route, HTTPRoute) and any(h is handler for h in route.route_handlers):
            return Response(None, status_code=HTTP_204_NO_CONTENT,
                            headers={"Allow": ", ".join(sorted(route.methods))})
    return None
