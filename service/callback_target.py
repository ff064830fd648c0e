"""Where a completion callback may go: an ``http(s)`` URL whose host resolves to public addresses
only, unless ``ORCH_CALLBACK_ALLOW_PRIVATE`` allows loopback, private, link-local and other
internal ones (a callback is a request this server makes for a client: it must not reach what
only the server can reach, SSRF). The address checked is the address connected to."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
URL_PATTERN = rf"^https?://[A-Za-z0-9](?:[A-Za-z0-9.-]{{0,252}})(?::{_PORT})?(?:/[^\s#]*)?$"
"""What ``callback_url`` may be: http or https, a host name or IPv4 address (no credentials),
an optional port, a path and query."""
MAX_URL_CHARS = 2048

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CallbackRefused(ValueError):
    """The callback's address may not be called (the message says why)."""


@dataclass(frozen=True)
class Target:
    """A checked callback URL and the address to connect to for it."""

    url: str
    host: str
    port: int
    address: str


def internal(address: IpAddress) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified: not the internet."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


def check_url(url: str, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a callback URL, judged without a DNS lookup (``None``: it can)."""
    if len(url) > MAX_URL_CHARS or not re.fullmatch(URL_PATTERN, url):
        return ("must be an http:// or https:// URL with a host name or IPv4 address, no"
                " credentials, and at most 2048 characters")
    host = urlsplit(url).hostname or ""
    if allow_private:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return _PRIVATE
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        return None
    return _PRIVATE if internal(literal) else None


_PRIVATE = ("points at a loopback or private address, which callbacks may not call"
            " (ORCH_CALLBACK_ALLOW_PRIVATE=true allows it)")


async def resolve(url: str, allow_private: bool) -> Target:
    """The address to connect to for ``url``: every address its host resolves to must be
    allowed (``CallbackRefused`` otherwise, or when the host does not resolve)."""
    problem = check_url(url, allow_private)
    if problem:
        raise CallbackRefused(f"callback_url {problem}")
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"callback host {host!r} does not resolve: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in found]
    if not allow_private and any(internal(a) for a in addresses):
        raise CallbackRefused(f"callback host {host!r} resolves to a loopback or private"
                              " address, which callbacks may not call"
                              " (ORCH_CALLBACK_ALLOW_PRIVATE=true allows it)")
    return Target(url, host, port, str(addresses[0]))
