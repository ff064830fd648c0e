"""Long-running commands: ``api``, ``agent``, ``migrate``, ``keys create`` and ``up``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from service.db.migrate import migrate
from service.db.pool import ensure_database, open_pool
from service.errors import OrchestratorError
from service.preflight import check_dependencies
from service.settings import Settings
from service.telemetry.logs import configure_logging
from service.telemetry.tracing import configure_tracing, shutdown_tracing

if TYPE_CHECKING:
    from stack.native import NativeStack


def preflight(settings: Settings) -> bool:
    """Print one line per unreachable dependency; False when the process cannot start."""
    problems = asyncio.run(check_dependencies(settings))
    for line in problems:
        print(line, file=sys.stderr)
    return not any(line.startswith("error:") for line in problems)


def run_api(settings: Settings) -> int:
    """Serve the API; metrics use prometheus-client's multiprocess mode (one directory, emptied
    here, shared by the server's worker processes), so nothing may import it before this."""
    import uvicorn

    from service.telemetry.multiproc import prepare_multiprocess_dir

    configure_logging(settings, service="api")
    if not preflight(settings):
        return 2
    prepare_multiprocess_dir(settings.metrics_dir
                             or str(Path(settings.state_dir) / f"metrics-api-{settings.api_port}"))
    uvicorn.run("service.api.app:create_asgi_app", factory=True, host=settings.api_host,
                port=settings.api_port, workers=settings.api_workers, loop="uvloop",
                http="httptools", access_log=False, log_level="warning", log_config=None,
                timeout_graceful_shutdown=int(settings.shutdown_grace_s))
    return 0


def run_agent(settings: Settings, agents: list[str] | None) -> int:
    from agents.runtime.worker import Worker

    configure_logging(settings, service="agent")
    if not preflight(settings):
        return 2
    try:
        worker = Worker(settings, agents)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_tracing(settings, service="agent")
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
        await ensure_database(settings)
        pool = await open_pool(settings, name="migrate")
        try:
            return [f"{m.version:04d}_{m.name}" for m in await migrate(pool)]
        finally:
            await pool.close()

    applied = asyncio.run(go())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


async def create_key(settings: Settings, name: str, scopes: tuple[str, ...],
                     key: str | None = None) -> str:
    """Store a key (after migrating) and return its clear value."""
    from service.db.keys import KeyStore  # not at import time: see run_api

    await ensure_database(settings)
    pool = await open_pool(settings, name="keys")
    try:
        await migrate(pool)
        value, _ = await KeyStore(pool).create(name, scopes, key)
        return value
    finally:
        await pool.close()


def dev_key(settings: Settings) -> str:
    """The development key for ``up``: ORCH_DEV_API_KEY, or one kept in the state directory."""
    if settings.dev_api_key:
        return settings.dev_api_key
    path = Path(settings.state_dir) / "dev-api-key"
    if path.exists():
        return path.read_text().strip()
    from service.db.keys import generate_key

    key = generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def run_up(settings: Settings, agent_processes: int, *, with_stack: bool = False) -> int:
    """API, agents and outbox relay on local defaults (and, ``with_stack``, Prometheus,
    Alertmanager and the page inbox), until Ctrl-C or SIGTERM; then everything stops."""
    from stack.native import StackError
    from stack.own_services import ensure_own

    started = time.monotonic()
    overrides: dict[str, str] = {}
    problems: list[str] = []
    if with_stack:  # services not running are started with data of their own
        overrides, problems = ensure_own(Path(settings.state_dir) / "stack")
        settings = Settings.from_env({**os.environ, **overrides})
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems or not preflight(settings):
        if with_stack:
            from stack.own_services import stop_own

            stop_own(Path(settings.state_dir) / "stack")
        return 2
    key = asyncio.run(create_key(settings, "dev", ("tasks:write", "tasks:read"),
                                 dev_key(settings)))
    command = [sys.executable, "-m", "service.cli.main"]
    log = ["--log-format", settings.log_format]
    env = {**os.environ, **overrides}
    children = {"api": subprocess.Popen([*command, "api", *log], env=env)}
    for i in range(agent_processes):
        children[f"agent-{i + 1}"] = subprocess.Popen(
            [*command, "agent", *log, "--metrics-port", str(settings.agent_metrics_port + i)],
            env=env)
    native = None
    try:
        if not _wait_ready(settings.base_url, list(children.values())):
            print("error: the API did not become ready; see its log lines above",
                  file=sys.stderr)
            return 1
        urls = [("API", f"{settings.base_url}  (OpenAPI {settings.base_url}/schema,"
                        f" runbook {settings.base_url}/runbook)")]
        if with_stack:
            native = monitoring_stack(settings, agent_processes)
            _record_pids(native.pid_file, children)
            native.start()
            _record_pids(native.pid_file, children, native)
            urls += [("Prometheus", native.prometheus_url),
                     ("Alertmanager", native.alertmanager_url),
                     ("Page inbox", f"{native.page_inbox_url}/pages  (orchestrator stack pages)"),
                     ("Grafana", "not run natively: docker compose -f stack/compose.yaml up")]
        lines = "\n".join(f"  {name + ':':<14}{url}" for name, url in urls)
        print(f"\norchestrator is up in {time.monotonic() - started:.1f}s\n{lines}\n"
              f"  {'API key:':<14}{key}\n\ntry:\n  export ORCH_API_KEY={key}\n"
              "  orchestrator submit echo '{\"hello\": \"world\"}' --wait\n"
              "stop with Ctrl-C\n", flush=True)
        _supervise(children)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        _stop(children.values(), settings.shutdown_grace_s + 5)
        if native is not None:
            native.stop()
        if with_stack:
            from stack.own_services import stop_own

            for name in stop_own(Path(settings.state_dir) / "stack"):
                print(f"stopped {name}", file=sys.stderr)
    failed = [c.returncode for c in children.values()
              if c.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


def monitoring_stack(settings: Settings, agent_processes: int) -> NativeStack:
    from stack.native import NativeStack, Ports, Timings
    from stack.services import enable_rabbitmq_metrics

    rabbitmq = ["127.0.0.1:15692"] if enable_rabbitmq_metrics() else []
    return NativeStack(
        state_dir=Path(settings.state_dir) / "stack",
        api_targets=[f"127.0.0.1:{settings.api_port}"],
        agent_targets=[f"127.0.0.1:{settings.agent_metrics_port + i}"
                       for i in range(agent_processes)],
        rabbitmq_targets=rabbitmq,
        ports=Ports(settings.prometheus_port, settings.alertmanager_port,
                    settings.page_inbox_port),
        routing_key=settings.pagerduty_routing_key or "0" * 32,
        timings=Timings(scrape_interval=settings.stack_scrape_interval,
                        rule_for=settings.alert_for_override or None,
                        group_wait=settings.alert_group_wait,
                        group_interval=settings.alert_group_interval))


def _record_pids(pid_file: Path, children: dict[str, subprocess.Popen[bytes]],
                 native: NativeStack | None = None) -> None:
    """What ``stack down`` stops: this supervisor, its orchestrator processes and the stack."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    rows = [("supervisor", os.getpid()), *((n, c.pid) for n, c in children.items())]
    if native is not None:
        rows += [(n, p.pid) for n, p in native.processes.items()]
    pid_file.write_text("".join(f"{name} {pid}\n" for name, pid in rows))


def _supervise(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Until Ctrl-C or SIGTERM. A child that exits is reported, not restarted: a stopped agent
    is a fault the alerts must show (and an operator fixes)."""
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    reported: set[str] = set()
    try:
        while not stop["now"]:
            for name, child in children.items():
                if child.poll() is not None and name not in reported:
                    reported.add(name)
                    print(f"warning: {name} exited with {child.returncode}", file=sys.stderr,
                          flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def _stop(children: Iterable[subprocess.Popen[bytes]], timeout_s: float) -> None:
    processes = list(children)
    for child in processes:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in processes:
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)


def _wait_ready(url: str, children: list[subprocess.Popen[bytes]], timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(c.poll() is not None for c in children):
            return False
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (it is, except on Windows)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


__all__ = ["create_key", "preflight", "run_agent", "run_api", "run_migrate", "run_up"]
