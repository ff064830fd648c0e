"""Free space of the volumes the orchestrator writes to: its state folder (logs, metrics,
pid files), PostgreSQL's data folder when the server runs on this host, and any volume named
in ``ORCH_DISK_VOLUMES`` (``name=path`` entries)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from catalog import metrics

LOCAL_HOSTS = ("", "127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Usage:
    free_bytes: int
    size_bytes: int

    @property
    def free_ratio(self) -> float:
        return self.free_bytes / self.size_bytes if self.size_bytes else 0.0


def usage(path: str) -> Usage | None:
    """Space on the filesystem holding ``path`` (its nearest existing parent); ``None`` when
    nothing of it exists."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    stats = os.statvfs(probe)
    return Usage(stats.f_bavail * stats.f_frsize, stats.f_blocks * stats.f_frsize)


def parse_volumes(entries: tuple[str, ...]) -> dict[str, str]:
    """``("name=path", ...)`` as a mapping; raises ``ValueError`` naming a malformed entry."""
    volumes: dict[str, str] = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"ORCH_DISK_VOLUMES entry {entry!r} is not NAME=PATH")
        volumes[name.strip()] = path.strip()
    return volumes


def database_is_local(database_url: str) -> bool:
    """Whether the database server runs on this host (so its data folder is visible here)."""
    host = urlsplit(database_url).hostname or ""
    return host in LOCAL_HOSTS or host.startswith("/")


class DiskGauges:
    """Sets ``orchestrator_disk_free_bytes`` and ``..._size_bytes`` per volume."""

    def __init__(self, volumes: dict[str, str]) -> None:
        self.volumes = dict(volumes)

    def add(self, name: str, path: str) -> None:
        self.volumes.setdefault(name, path)

    def sample(self) -> dict[str, Usage]:
        seen: dict[str, Usage] = {}
        for name, path in self.volumes.items():
            found = usage(path)
            if found is None:
                continue
            seen[name] = found
            metrics.DISK_FREE.labels(name).set(found.free_bytes)
            metrics.DISK_SIZE.labels(name).set(found.size_bytes)
        return seen
