"""Why a dependency cannot be used, told apart: nothing answers (refused, timed out, unknown
host), or it answers on its usual port while the URL names another. PostgreSQL, RabbitMQ and
Redis each add what their own errors say (a refused login, a missing database or vhost)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket

from service.errors import DependencyNotAnswering


def redact(url: str) -> str:
    """The URL without its password, safe to print or log."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ETIMEDOUT: "timed out",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
}

def unreachable_reason(exc: BaseException) -> str | None:
    """"connection refused", "timed out", "unknown host", ... when ``exc`` or what caused it
    says nothing answered; None when something answered (or ``exc`` does not say)."""
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            break
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "unknown host"
        if isinstance(current, TimeoutError):
            return "timed out"
        if isinstance(current, OSError) and current.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[current.errno]
        cause = current.__cause__
        current = cause if cause is not None or current.__suppress_context__ \
            else current.__context__
    return None


async def answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts a TCP connection on ``host:port`` within ``timeout_s``."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def not_answering(name: str, url: str, reason: str, *, host: str | None, port: int,
                        default_port: int, variable: str, start_hint: str,
                        cause: BaseException | None = None) -> DependencyNotAnswering:
    """The error for a service that does not answer at ``url``: how to start it, unless the
    URL names a host that does not resolve, or a port other than the usual one while the
    service answers on the usual one (then the URL is wrong, not the service down)."""
    fix = None
    if reason == "unknown host":
        reason = f"unknown host {host}" if host else reason
        fix = f"check the host in {variable}"
    elif (host and not host.startswith("/") and port != default_port
          and await answers(host, default_port)):
        where = f"[{host}]" if ":" in host else host
        fix = f"{name} answers on {where}:{default_port}: check the port in {variable}"
    return DependencyNotAnswering(name, redact(url), reason, start_hint=start_hint, fix=fix,
                                  cause=cause)
