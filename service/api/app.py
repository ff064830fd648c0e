"""The Litestar application factory, and the ASGI app a server worker runs (with its telemetry).

Pages of the layers above the service (the runbook) are handed in by the composition root
(``orchestrator.asgi``), which is what ``orchestrator api`` serves."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import Any, cast

from litestar import Litestar, Router
from litestar.datastructures import State

from agents.registry import load_agent_modules
from service.api.admin_dead_letters import DeadLettersController
from service.api.admin_dead_letters import Purge as DeadLetterPurge
from service.api.admin_dead_letters import Replay as DeadLetterReplay
from service.api.admin_keys import CreateKey, KeysController
from service.api.admin_queue_stats import QueueStatsController
from service.api.admin_report import ReportController
from service.api.admin_stats import StatsController
from service.api.agents import list_agents
from service.api.allow import answer_options
from service.api.auth import require_api_key
from service.api.callbacks import CallbacksController
from service.api.errors import EXCEPTION_HANDLERS
from service.api.health import live, ready
from service.api.json_depth import JsonDepthLimit
from service.api.metrics import MetricsPort, metrics_endpoint
from service.api.openapi import SECURITY, declare_rules, openapi_config
from service.api.schedules import CreateSchedule, SchedulesController
from service.api.schemas import SubmitTask
from service.api.state import services_lifespan
from service.api.task_stream import TaskStreamController
from service.api.tasks import TaskController
from service.settings import Settings, get_settings
from service.telemetry.http import ASGIApp, RequestTelemetry, traced
from service.telemetry.logs import configure_logging
from service.telemetry.tracing import configure_tracing, spans_exported


def create_app(settings: Settings | None = None, extra_handlers: Sequence[Any] = ()) -> Litestar:
    settings = settings or get_settings()
    v1 = Router(path="/",
                route_handlers=[TaskController, TaskStreamController, KeysController,
                                StatsController, QueueStatsController, DeadLettersController,
                                ReportController, SchedulesController, CallbacksController,
                                list_agents],
                guards=[require_api_key], security=SECURITY)
    handlers: list[Any] = [v1, live, ready, *extra_handlers]
    if settings.telemetry.metrics_enabled:
        handlers.append(metrics_endpoint)
    app = Litestar(
        route_handlers=handlers,
        lifespan=[services_lifespan(settings)],
        state=State({"instance": settings.api.instance_id}),
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.api.max_body_bytes,
        middleware=[JsonDepthLimit(settings.api.max_json_depth),
                    *([MetricsPort(settings.api.metrics_port)] if settings.api.metrics_port
                      else [])],
        openapi_config=openapi_config(),
        before_request=answer_options,
        debug=False,
    )
    declare_rules(app.openapi_schema, load_agent_modules(settings.worker.agent_modules),
                  settings.tasks.max_timeout_s,
                  bodies=(SubmitTask, CreateKey, DeadLetterReplay, DeadLetterPurge,
                          CreateSchedule))
    return app


def asgi_app(extra_handlers: Sequence[Any] = ()) -> ASGIApp:
    """The app one server worker process serves, with its telemetry and ``extra_handlers``."""
    settings = get_settings()
    _exit_with_the_server()
    configure_logging(settings.telemetry, service="api")
    configure_tracing(settings.telemetry, service="api")
    app: ASGIApp = RequestTelemetry(cast(ASGIApp, create_app(settings, extra_handlers)),
                                    record_metrics=settings.telemetry.metrics_enabled,
                                    name_spans=spans_exported())
    return traced(app) if settings.telemetry.tracing_enabled else app


def _exit_with_the_server() -> None:
    """This process gets SIGTERM when the process that started it dies, even by SIGKILL (a
    server worker, or the API under `orchestrator up`), instead of living on as an orphan
    (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
