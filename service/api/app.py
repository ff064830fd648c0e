"""The Litestar application factory."""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig

from service.api.agents import list_agents
from service.api.auth import require_api_key
from service.api.errors import EXCEPTION_HANDLERS
from service.api.health import live, ready
from service.api.state import services_lifespan
from service.api.tasks import TaskController
from service.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    v1 = Router(path="/", route_handlers=[TaskController, list_agents], guards=[require_api_key])
    return Litestar(
        route_handlers=[v1, live, ready],
        lifespan=[services_lifespan(settings)],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title="Agent orchestrator", version="0.1.0",
                                     path="/schema"),
        debug=False,
    )
