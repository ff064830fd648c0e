"""A RabbitMQ cluster of a test's own on this machine: extra ``rabbitmq-server`` nodes with their
own node names, loopback ports and data folders, joined to each other (never to the machine's
own node, whose broker the other tests use). TOOLCHAIN.md has the recipe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from service.ports import free_port

START_TIMEOUT_S = 120


@dataclass
class Node:
    name: str
    folder: Path
    amqp_port: int
    dist_port: int
    prometheus_port: int

    @property
    def environ(self) -> dict[str, str]:
        return {**os.environ, "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.folder / "log")}

    def ctl(self, *args: str, timeout_s: float = 60, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["rabbitmqctl", "-q", "-n", self.name, *args], capture_output=True,
                              text=True, timeout=timeout_s, check=check)

    def start(self) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self.environ, check=True,
                       capture_output=True, timeout=60)

    def await_startup(self) -> None:
        """Until the node runs RabbitMQ (``await_startup`` fails at once while its Erlang VM is
        not up yet)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.ctl("ping", check=False, timeout_s=30).returncode != 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {self.name} did not start: see {self.folder / 'log'}")
            time.sleep(0.5)
        self.ctl("await_startup", "--timeout", str(START_TIMEOUT_S), timeout_s=START_TIMEOUT_S + 10)

    def stop(self) -> None:
        """Shut the node down (its clients' connections drop, its queue members go)."""
        self.ctl("stop", check=False, timeout_s=90)

    def kill(self) -> None:
        """Whatever of the node still runs (one that never finished starting ignores ``stop``)."""
        subprocess.run(["pkill", "-KILL", "-f", f"-sname {self.name}"], capture_output=True,
                       timeout=30)

    def url(self, vhost: str) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/{vhost}"


class LocalCluster:
    """``size`` nodes started side by side and joined to the first."""

    def __init__(self, size: int = 3) -> None:
        run = uuid.uuid4().hex[:6]
        self.root = Path(tempfile.mkdtemp(prefix="rabbitmq-cluster-"))
        self.nodes = [self._node(f"orch{n}-{run}@localhost", n) for n in range(size)]
        shutil.chown(self.root, "rabbitmq", "rabbitmq")
        for path in self.root.rglob("*"):
            shutil.chown(path, "rabbitmq", "rabbitmq")

    def _node(self, name: str, index: int) -> Node:
        node = Node(name, self.root / f"node{index}", free_port(), free_port(), free_port())
        node.folder.mkdir()
        (node.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{node.amqp_port}\n"
            f"prometheus.tcp.port = {node.prometheus_port}\n"
            f"prometheus.tcp.ip = 127.0.0.1\n"
            "loopback_users.guest = true\n")
        (node.folder / "enabled_plugins").write_text("[rabbitmq_prometheus].\n")
        return node

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.await_startup()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        running = json.loads(first.ctl("cluster_status", "--formatter", "json").stdout)
        assert sorted(running["running_nodes"]) == sorted(n.name for n in self.nodes), running

    def add_vhost(self, vhost: str) -> None:
        first = self.nodes[0]
        first.ctl("add_vhost", vhost)
        first.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")

    def urls(self, vhost: str) -> str:
        return ",".join(node.url(vhost) for node in self.nodes)

    def node(self, name: str) -> Node:
        [found] = [n for n in self.nodes if n.name == name]
        return found

    def leader(self, queue: str, vhost: str, asking: Node | None = None) -> str:
        """The node that leads the quorum queue ``queue`` now."""
        asker = asking or self.nodes[0]
        out = asker.ctl("list_queues", "-p", vhost, "name", "leader", "--formatter", "json")
        [leader] = [q["leader"] for q in json.loads(out.stdout) if q["name"] == queue]
        return str(leader)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        deadline = time.monotonic() + 30
        for node in self.nodes:  # no beam left behind holding a port
            while node.ctl("ping", check=False, timeout_s=20).returncode == 0 and \
                    time.monotonic() < deadline:
                time.sleep(0.5)
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)
