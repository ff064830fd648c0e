"""The compose stack: pinned images, mounted files that exist, scrape targets that are services,
and a file docker-compose accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from alerts.render import ALERTMANAGER
from stack.render import PROMETHEUS

pytestmark = pytest.mark.unit

STACK = Path(__file__).resolve().parents[1] / "stack"
COMPOSE = STACK / "compose.yaml"


def services() -> dict[str, dict[str, object]]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_every_image_is_pinned_to_a_version() -> None:
    assert services().items(), "nothing to check"
    for name, service in services().items():
        image = str(service["image"])
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest", f"{name}: {image} is not pinned"


def test_every_mounted_file_exists() -> None:
    assert services().items(), "nothing to check"
    for name, service in services().items():
        for volume in service.get("volumes", []):  # type: ignore[attr-defined]
            source = str(volume).split(":", 1)[0]
            if source.startswith("."):
                assert (STACK / source).exists(), f"{name} mounts missing {source}"


def test_every_scrape_target_is_a_compose_service() -> None:
    config = yaml.safe_load((STACK.parent / PROMETHEUS).read_text())
    known = set(services())
    hosts = [t.split(":")[0] for job in config["scrape_configs"]
             for sc in job.get("static_configs", []) for t in sc["targets"]]
    hosts += [name for job in config["scrape_configs"]
              for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
    hosts += [t.split(":")[0] for am in config["alerting"]["alertmanagers"]
              for sc in am["static_configs"] for t in sc["targets"]]
    assert hosts and set(hosts) <= known, set(hosts) - known


def test_every_receiver_inside_the_stack_is_a_compose_service() -> None:
    """A webhook on 127.0.0.1 would point inside the Alertmanager container, where nothing
    listens: its notifications would be dropped."""
    config = yaml.safe_load((STACK.parent / ALERTMANAGER).read_text())
    urls = [hook["url"] for receiver in config["receivers"]
            for hook in receiver.get("webhook_configs", [])]
    hosts = {urlsplit(url).hostname for url in urls}
    assert urls and hosts <= set(services()), hosts


def test_every_service_has_a_health_check_or_waits_for_one() -> None:
    assert services().items(), "nothing to check"
    for name, service in services().items():
        if name in ("postgres-exporter", "redis-exporter"):
            assert "depends_on" in service, name
        else:
            assert "healthcheck" in service or name in ("api",), name


def test_docker_compose_accepts_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: apt-get install -y docker-compose")
    result = subprocess.run([binary, "-f", str(COMPOSE), "config", "--quiet"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_published_port_is_bound_to_loopback() -> None:
    published = [(name, str(port)) for name, service in services().items()
                 for port in service.get("ports", [])]  # type: ignore[attr-defined]
    assert published, "nothing to check"
    for name, port in published:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_credentials_come_from_the_env_file_with_local_defaults() -> None:
    """Every password in the file is a ``${VAR:-default}`` that stack/.env can set, and
    env.example names each such variable."""
    text = COMPOSE.read_text()
    secrets = ("POSTGRES_PASSWORD", "RABBITMQ_USER", "RABBITMQ_PASSWORD", "PAGERDUTY_ROUTING_KEY")
    example = (STACK / "env.example").read_text()
    for variable in secrets:
        assert f"${{{variable}:-" in text, variable
        assert f"\n{variable}=" in example, variable
    for url in re.findall(r"(?:postgresql|amqp)://[^\s]+", text):
        user_and_password = urlsplit(url.replace("${", "{").replace(":-", "=")).netloc
        assert "{" in user_and_password.split("@")[0], f"hard-coded credentials in {url}"
