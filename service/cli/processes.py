"""Long-running commands: ``api``, ``agent``, ``migrate``, ``keys create`` and ``up``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import httpx

from service.db.migrate import migrate
from service.db.pool import ensure_database, open_pool
from service.preflight import check_dependencies
from service.settings import Settings
from service.telemetry.logs import configure_logging
from service.telemetry.tracing import configure_tracing, shutdown_tracing


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


def run_up(settings: Settings, agent_processes: int) -> int:
    """API, agents and outbox relay on local defaults, until Ctrl-C."""
    if not preflight(settings):
        return 2
    key = asyncio.run(create_key(settings, "dev", ("tasks:write", "tasks:read"),
                                 dev_key(settings)))
    command = [sys.executable, "-m", "service.cli.main"]
    log = ["--log-format", settings.log_format]
    children = [subprocess.Popen([*command, "api", *log])]
    children += [subprocess.Popen([*command, "agent", *log, "--metrics-port",
                                   str(settings.agent_metrics_port + i)])
                 for i in range(agent_processes)]
    url = settings.base_url
    if _wait_ready(url, children):
        print(f"\norchestrator is up\n  API:     {url}  (OpenAPI: {url}/schema)\n"
              f"  API key: {key}\n\ntry:\n  export ORCH_API_KEY={key}\n"
              "  orchestrator submit echo '{\"hello\": \"world\"}' --wait\n"
              "stop with Ctrl-C\n", flush=True)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"] and all(c.poll() is None for c in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=settings.shutdown_grace_s + 5)
        except subprocess.TimeoutExpired:
            child.kill()
    failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


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
