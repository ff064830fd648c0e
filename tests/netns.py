"""Hosts on one machine: network namespaces, each with a veth link to a bridge of its own, so
processes talk over real links that a test can cut (``ip link set ... down``), as between
machines. Needs root (``ip netns``); nothing of the machine's own network changes."""

from __future__ import annotations

import random
import subprocess
import uuid
from dataclasses import dataclass


def ip(*args: str, namespace: str | None = None) -> None:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@dataclass(frozen=True)
class Host:
    namespace: str
    address: str
    link: str
    """The host side of its veth pair, on the bridge: down cuts the host off."""

    @property
    def launcher(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.namespace)


class Hosts:
    """Namespaces on a bridge; the machine itself is the bridge's ``gateway`` address."""

    def __init__(self, names: list[str]) -> None:
        run = uuid.uuid4().hex[:5]
        self.bridge = f"orb{run}"
        prefix = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}"
        self.gateway = f"{prefix}.1"
        self.hosts = {name: Host(f"orch-{run}-{name}", f"{prefix}.{10 + n}", f"orv{run}{n}")
                      for n, name in enumerate(names)}

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def create(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host in self.hosts.values():
            inside = f"{host.link}i"
            ip("netns", "add", host.namespace)
            ip("link", "add", host.link, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", host.namespace)
            ip("link", "set", host.link, "master", self.bridge)
            ip("link", "set", host.link, "up")
            ip("addr", "add", f"{host.address}/24", "dev", inside, namespace=host.namespace)
            ip("link", "set", inside, "up", namespace=host.namespace)
            ip("link", "set", "lo", "up", namespace=host.namespace)
            ip("route", "add", "default", "via", self.gateway, namespace=host.namespace)

    def cut(self, name: str) -> None:
        ip("link", "set", self.hosts[name].link, "down")

    def restore(self, name: str) -> None:
        ip("link", "set", self.hosts[name].link, "up")

    def destroy(self) -> None:
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True,
                           timeout=30)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)
