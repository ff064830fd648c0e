"""The ASGI application ``orchestrator api`` serves: the service's API and the runbook page,
which the service cannot import (it is rendered by ``alerts``, a layer above it)."""

from __future__ import annotations

from orchestrator.runbook_page import runbook_page
from service.api.app import asgi_app
from service.telemetry.http import ASGIApp


def create_asgi_app() -> ASGIApp:
    """Called once in every server worker process (uvicorn's factory)."""
    return asgi_app(extra_handlers=[runbook_page])
