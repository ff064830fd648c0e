"""The API's HTTP server: uvicorn with the bounded httptools protocol, on the API port and, when
``ORCH_API_METRICS_PORT`` is set, on that port too (``/metrics`` is then served there only)."""

from __future__ import annotations

import socket
import sys

from service.settings import Settings

STARTUP_FAILURE = 3


def serve_api(settings: Settings) -> None:
    """Serve until stopped; ``SystemExit`` when a socket cannot be bound or start-up fails."""
    from uvicorn import Config, Server
    from uvicorn.supervisors import Multiprocess

    from service.api.http_limits import LimitedHttpToolsProtocol

    config = Config("orchestrator.asgi:create_asgi_app", factory=True, host=settings.api.host,
                    port=settings.api.port, workers=settings.api.workers, loop="uvloop",
                    http=LimitedHttpToolsProtocol,
                    limit_concurrency=settings.api.max_connections, access_log=False,
                    log_level="warning", log_config=None,
                    timeout_graceful_shutdown=int(settings.worker.shutdown_grace_s))
    sockets = [config.bind_socket()]
    if settings.api.metrics_port:
        sockets.append(_bind(settings.telemetry.metrics_host, settings.api.metrics_port))
    if config.workers > 1:
        Multiprocess(config, sockets=sockets).run()
        return
    server = Server(config)
    server.run(sockets=sockets)
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        print(f"error: cannot serve the API's metrics on {host}:{port} ({exc.strerror});"
              " pick another ORCH_API_METRICS_PORT", file=sys.stderr)
        sys.exit(1)
    sock.set_inheritable(True)
    return sock
