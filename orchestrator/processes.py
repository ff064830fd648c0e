"""Long-running commands: ``api``, ``agent``, ``migrate``, ``keys create`` and ``up``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.api.readiness import ForeignServer, answers
from service.db.migrate import migrate, migrated_pool
from service.db.pool import ensure_database, open_pool
from service.errors import OrchestratorError, PortUnavailable
from service.ports import bind_error, require_free
from service.preflight import check_dependencies
from service.retention import RetentionPolicy
from service.settings import Settings
from service.telemetry.logs import configure_logging
from service.telemetry.tracing import configure_tracing, shutdown_tracing

if TYPE_CHECKING:
    from stack.native import NativeStack
    from stack.supervisor import Supervisor

COMMAND = [sys.executable, "-m", "orchestrator"]
API_PORT = "ORCH_API_PORT"


def preflight(settings: Settings) -> bool:
    """Print one line per unreachable dependency; False when the process cannot start."""
    problems = asyncio.run(check_dependencies(settings))
    for line in problems:
        print(line, file=sys.stderr)
    return not any(line.startswith("error:") for line in problems)


def run_api(settings: Settings) -> int:
    """Serve the API. Metrics use prometheus-client's multiprocess mode in a folder of this
    instance's own (shared with its server workers, removed at exit), so nothing may import
    that package before this."""
    from orchestrator.serving import serve_api
    from service.telemetry.multiproc import claim_multiprocess_dir, release_multiprocess_dir

    configure_logging(settings.telemetry, service="api")
    try:  # before anything else: a taken port touches nothing of the server that holds it
        require_free("the API", settings.api.host, settings.api.port, API_PORT)
    except PortUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        RetentionPolicy.of(settings.tasks)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not preflight(settings):
        return 2
    os.environ["ORCH_INSTANCE_ID"] = settings.api.instance_id or uuid.uuid4().hex[:12]
    metrics_dir = settings.telemetry.metrics_dir
    folder = claim_multiprocess_dir(Path(metrics_dir) if metrics_dir
                                    else settings.state_path / "metrics")
    # uvicorn re-raises the SIGTERM it handled once the server is down: let that unwind here
    # (so the folder is removed) instead of ending the process on the spot
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        serve_api(settings)
    except SystemExit:
        if bind_error(settings.api.host, settings.api.port) is None:
            raise
        try:  # taken between the check and the bind: say so in the same one line
            require_free("the API", settings.api.host, settings.api.port, API_PORT)
        except PortUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except _Terminated:
        return 0
    finally:
        release_multiprocess_dir(folder)
    return 0


class _Terminated(BaseException):
    """SIGTERM, after the server has stopped."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def run_agent(settings: Settings, agents: list[str] | None) -> int:
    from service.worker.worker import Worker

    configure_logging(settings.telemetry, service="agent")
    if not preflight(settings):
        return 2
    try:
        worker = Worker(settings, agents)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_tracing(settings.telemetry, service="agent")
    try:
        _run_loop(worker.run_until_stopped())
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutdown_tracing()
    return 0


def run_migrate(settings: Settings) -> int:
    async def go() -> list[str]:
        await ensure_database(settings.database)
        pool = await open_pool(settings.database, name="migrate")
        try:
            return [f"{m.version:04d}_{m.name}" for m in await migrate(pool)]
        finally:
            await pool.close()

    applied = asyncio.run(go())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def retire_agent(settings: Settings, agent: str) -> int:
    """``agents retire NAME``: no worker is expected for ``agent`` any more."""
    from service.db.workers import WorkerRegistry

    async def go() -> bool:
        async with migrated_pool(settings.database, "retire") as pool:
            return await WorkerRegistry(pool).retire(agent)

    if asyncio.run(go()):
        print(f"retired {agent}: no page while no worker serves it, until one starts again")
        return 0
    print(f"error: {agent} is not an agent type that has had a worker", file=sys.stderr)
    return 1


def dev_key(settings: Settings) -> str:
    """The development key for ``up``: ORCH_DEV_API_KEY, or one kept in the state directory."""
    if settings.api.dev_key:
        return settings.api.dev_key
    path = settings.dev_key_file
    if path.exists():
        return path.read_text().strip()
    from service.db.keys import generate_key  # not at import time: see run_api

    key = generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _provision_dev_key(settings: Settings) -> str | None:
    """The development key, live in the database: a revoked one is never revived, the
    runner makes a new one instead (``None``: the revoked one is ORCH_DEV_API_KEY)."""
    from service.db.keys import provision_dev_key

    key = dev_key(settings)
    if asyncio.run(provision_dev_key(settings.database, key)):
        return key
    if settings.api.dev_key:
        print("error: ORCH_DEV_API_KEY was revoked; unset it (a new development key is then"
              " made) or set another", file=sys.stderr)
        return None
    settings.dev_key_file.unlink()
    key = dev_key(settings)
    asyncio.run(provision_dev_key(settings.database, key))
    print(f"the development key was revoked: a new one is in {settings.dev_key_file}",
          file=sys.stderr)
    return key


def run_up(settings: Settings, agent_processes: int, *, with_stack: bool = False) -> int:
    """API, agents and outbox relay on local defaults (and, ``with_stack``, Prometheus,
    Alertmanager and the page inbox), until Ctrl-C or SIGTERM; then everything stops.

    With the stack, the state folder's lock is taken first: a second start refuses and
    touches nothing of the running one."""
    from stack.errors import StackError
    from stack.own_services import stop_own
    from stack.supervisor import Supervisor

    started = time.monotonic()
    code = 0
    supervisor = Supervisor(settings.stack_dir if with_stack else None,
                            grace_s=settings.worker.shutdown_grace_s + 5)
    try:
        with supervisor:
            try:
                code = _up(settings, agent_processes, supervisor, started, with_stack)
            finally:
                if with_stack:
                    supervisor.stop()  # the orchestrator first, then its own services
                    for name in stop_own(settings.stack_dir):
                        print(f"stopped {name}", file=sys.stderr)
    except (StackError, ForeignServer) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1 if supervisor.failed() else code


def _up(settings: Settings, agent_processes: int, supervisor: Supervisor, started: float,
        with_stack: bool) -> int:
    from stack.own_services import ensure_own

    taken = _taken_ports(settings, agent_processes, with_stack)
    for line in taken:
        print(f"error: {line}", file=sys.stderr)
    if taken:
        return 2
    overrides = {"ORCH_STATE_DIR": settings.state_dir,
                 "ORCH_LOG_FORMAT": settings.telemetry.log_format}
    if with_stack and not settings.api.runbook_url:  # served where the pages come from
        overrides["ORCH_RUNBOOK_URL"] = (f"http://127.0.0.1:{settings.stack.page_inbox_port}"
                                         "/runbook")
    if with_stack:  # services not running are started with data of their own
        own, problems = ensure_own(settings.stack_dir)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if problems:
            return 2
        overrides.update(own)
    settings = Settings.from_env({**os.environ, **overrides})
    if not preflight(settings):
        return 2
    key = _provision_dev_key(settings)
    if key is None:
        return 2
    instance = uuid.uuid4().hex[:12]
    env = {**os.environ, **overrides}
    logs = settings.stack_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = ["--log-format", settings.telemetry.log_format]
    supervisor.spawn("api", [*COMMAND, "api", *log], own_log=logs / "api.log",
                     env={**env, "ORCH_INSTANCE_ID": instance,
                          "ORCH_LOG_FILE": str(logs / "api.log")})
    for i in range(agent_processes):
        name = f"agent-{i + 1}"
        supervisor.spawn(name, [*COMMAND, "agent", *log, "--metrics-port",
                                str(settings.worker.metrics_port + i)],
                         own_log=logs / f"{name}.log",
                         env={**env, "ORCH_LOG_FILE": str(logs / f"{name}.log")})
    supervisor.wait_until(lambda: answers(settings.api.base_url, instance=instance), 60,
                          f"the API to answer at {settings.api.base_url}")
    urls = {"API": settings.api.base_url, "Runbook": settings.api.runbook_base_url}
    lines = [("API", f"{settings.api.base_url}  (OpenAPI {settings.api.base_url}/schema)"),
             ("Runbook", settings.api.runbook_base_url)]
    if with_stack:
        native = monitoring_stack(settings, agent_processes)
        native.start(supervisor)
        urls.update(native.urls())
        lines += [(name, url) for name, url in native.shown_urls().items()]
    lines.append(("Logs", str(logs)))
    supervisor.note_urls(urls)
    table = "\n".join(f"  {name + ':':<14}{url}" for name, url in lines)
    print(f"\norchestrator is up in {time.monotonic() - started:.1f}s\n{table}\n"
          f"  {'API key:':<14}{key}\n\ntry:\n{_path_hint()}"
          f"  export ORCH_API_KEY={key}\n"
          "  orchestrator submit echo '{\"hello\": \"world\"}' --wait\n"
          + ("  orchestrator stack status     (from any folder)\n" if with_stack else "")
          + "stop with Ctrl-C\n", flush=True)
    supervisor.supervise()
    return 0


def _taken_ports(settings: Settings, agent_processes: int, with_stack: bool) -> list[str]:
    """One line per port this start needs that something else holds."""
    wanted = [("the API", settings.api.host, settings.api.port, API_PORT)]
    if settings.worker.metrics_port:
        wanted += [(f"agent-{i + 1} metrics", settings.telemetry.metrics_host,
                    settings.worker.metrics_port + i, "ORCH_AGENT_METRICS_PORT")
                   for i in range(agent_processes)]
    if with_stack:
        wanted += [("Prometheus", "127.0.0.1", settings.stack.prometheus_port,
                    "ORCH_PROMETHEUS_PORT"),
                   ("Alertmanager", "127.0.0.1", settings.stack.alertmanager_port,
                    "ORCH_ALERTMANAGER_PORT"),
                   ("the page inbox", "127.0.0.1", settings.stack.page_inbox_port,
                    "ORCH_PAGE_INBOX_PORT")]
    taken = []
    for what, host, port, variable in wanted:
        try:
            require_free(what, host, port, variable)
        except PortUnavailable as exc:
            taken.append(str(exc))
    return taken


def _path_hint() -> str:
    """How to put this installation's ``orchestrator`` on PATH, when it is not."""
    here = Path(sys.executable).parent
    found = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    return "" if here in found else f'  export PATH="{here}:$PATH"\n'


def monitoring_stack(settings: Settings, agent_processes: int) -> NativeStack:
    from alerts.links import Deployment
    from operations.drills.drills import drills_by_alert
    from stack.native import NativeStack, Ports, Timings
    from stack.services import enable_rabbitmq_metrics

    rabbitmq = ["127.0.0.1:15692"] if enable_rabbitmq_metrics() else []
    return NativeStack(
        state_dir=settings.stack_dir,
        api_targets=[f"127.0.0.1:{settings.api.metrics_port or settings.api.port}"],
        agent_targets=[f"127.0.0.1:{settings.worker.metrics_port + i}"
                       for i in range(agent_processes)],
        rabbitmq_targets=rabbitmq,
        ports=Ports(settings.stack.prometheus_port, settings.stack.alertmanager_port,
                    settings.stack.page_inbox_port),
        routing_key=settings.stack.pagerduty_routing_key or "0" * 32,
        deployment=Deployment.from_settings(settings),
        runbook_drills=tuple(drills_by_alert().items()),
        timings=Timings(scrape_interval=settings.stack.scrape_interval,
                        rule_for=settings.stack.alert_for_override or None,
                        rule_window=settings.stack.alert_window_override or None,
                        group_wait=settings.stack.alert_group_wait,
                        group_interval=settings.stack.alert_group_interval))


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (it is, except on Windows)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


__all__ = ["preflight", "retire_agent", "run_agent", "run_api", "run_migrate",
           "run_up"]
