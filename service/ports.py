"""Listening ports: is one free, who holds it, and a free one to suggest.

A start that finds its port taken must stop with one line that says which port, what holds it
(when this machine lets us see: Linux ``/proc``) and which variable picks another.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from service.errors import PortUnavailable
from service.procinfo import command_line

_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_for(default: int, host: str = "127.0.0.1") -> int:
    """``default`` when nothing listens there, else a free one."""
    return default if bind_error(host, default) is None else free_port(host)


def bind_error(host: str, port: int) -> OSError | None:
    """Why a server could not listen on ``host:port`` now (``None``: it could)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            return exc
    return None


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def listening_pids(port: int) -> set[int]:
    """Processes with a socket listening on ``port`` (empty when unknown or none)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return set()
    pids = set()
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        pids.add(int(proc.name))
                        break
    return pids


def holder(port: int) -> Holder | None:
    """The process that listens on ``port``, when this machine lets us see it."""
    pids = sorted(listening_pids(port))
    return Holder(pids[0], command_line(pids[0])) if pids else None


def require_free(what: str, host: str, port: int, variable: str) -> None:
    """Raise ``PortUnavailable`` naming the port, its holder and ``variable`` to pick another."""
    error = bind_error(host, port)
    if error is None:
        return
    held = holder(port) if error.errno == errno.EADDRINUSE else None
    by = f"it is held by {held}; stop that, or pick" if held else "pick"
    raise PortUnavailable(what, host, port, f"{by} another port: {variable}={free_port()}",
                          error)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes
