"""Starting next to something that runs: a taken port stops the start with one line and
touches nothing of the holder; a second API never blinds the first one's metrics; a second stack
refuses; the stack's own config names its rules by absolute path."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import httpx
import pytest
import yaml

from service.api.readiness import ForeignServer, answers
from stack.errors import AlreadyRunning
from stack.native import NativeStack
from stack.supervisor import Supervisor, lock_holder, recorded_status
from tests.services import ORCHESTRATOR, Env, free_port, start_api


@contextlib.contextmanager
def foreign_server(body: bytes = b'{"status": "ready"}') -> Iterator[int]:
    """Somebody else's HTTP server on a loopback port, answering 200 to everything."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.mark.integration
@pytest.mark.parametrize("command", [["stack", "up"], ["api"]])
def test_a_foreign_server_on_the_api_port_stops_the_start_with_one_line(
        own_env: Env, tmp_path: Path, command: list[str]) -> None:
    with foreign_server() as port:
        # When the stack (or the API alone) is started on a port another server holds
        environ = {**os.environ, **own_env.with_vars(
            api_port=str(port), state_dir=str(tmp_path / "state"),
            agent_metrics_port=str(free_port()), prometheus_port=str(free_port()),
            alertmanager_port=str(free_port()), page_inbox_port=str(free_port()))}
        result = subprocess.run([*ORCHESTRATOR, *command], env=environ, capture_output=True,
                                text=True, timeout=60)
        # Then it stops at once with one line: the port, who holds it, how to pick another
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        [line] = errors(result)
        assert f"127.0.0.1:{port}" in line
        assert f"held by pid {os.getpid()}" in line  # this test process serves it
        assert "ORCH_API_PORT=" in line
        assert "orchestrator is up" not in result.stdout
        # And the foreign server is untouched, and nothing was started or recorded
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        assert recorded_status(tmp_path / "state" / "stack") == (None, [])
        assert not (tmp_path / "state" / "metrics").exists() or not any(
            (tmp_path / "state" / "metrics").iterdir())


@pytest.mark.unit
def test_readiness_answered_by_another_server_is_not_taken_for_the_api() -> None:
    with (foreign_server(b'{"status": "ready", "instance": "theirs"}') as port,
          pytest.raises(ForeignServer, match="answered by another server")):
        answers(f"http://127.0.0.1:{port}", instance="mine")
    with foreign_server(b"<html>not json</html>") as port:
        assert answers(f"http://127.0.0.1:{port}", instance="mine") is False


def _requests_total(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("orchestrator_http_requests_total{"))


@pytest.mark.integration
def test_a_second_api_on_a_taken_port_leaves_the_first_ones_metrics_whole(
        own_env: Env) -> None:
    # Given an API that has answered requests
    port = free_port()
    url = start_api(own_env, port=port)
    for _ in range(20):
        httpx.get(f"{url}/v1/tasks", timeout=5)  # 401s: counted like any answer
    deadline = time.monotonic() + 10
    while _requests_total(url) < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    before = _requests_total(url)
    assert before >= 20
    folders = list((own_env.settings.state_path / "metrics").iterdir())
    # When a second API is started on the same port with the same state folder
    second = subprocess.run([*ORCHESTRATOR, "api", "--port", str(port)],
                            env={**os.environ, **own_env.environ}, capture_output=True,
                            text=True, timeout=60)
    # Then it refuses in one line, and the first one's metrics and folder are whole
    assert second.returncode == 2
    assert len(errors(second)) == 1 and f"127.0.0.1:{port}" in errors(second)[0]
    assert _requests_total(url) >= before
    assert list((own_env.settings.state_path / "metrics").iterdir()) == folders
    assert all(any(folder.iterdir()) for folder in folders)


@pytest.mark.unit
def test_each_api_instance_owns_its_metrics_folder_and_dead_ones_are_cleared(
        tmp_path: Path) -> None:
    parent = tmp_path / "metrics"
    (parent / f"api-{os.getppid()}").mkdir(parents=True)  # a running instance's
    (parent / "api-999999999").mkdir()  # an instance that died without cleaning up
    claim = ("import os, sys; from pathlib import Path;"
             " from service.telemetry.multiproc import claim_multiprocess_dir as claim;"
             " p = claim(Path(sys.argv[1])); print(p.name, os.environ['PROMETHEUS_MULTIPROC_DIR'])")
    out = subprocess.run([sys.executable, "-c", claim, str(parent)], capture_output=True,
                         text=True, check=True, timeout=30).stdout.split()
    name, env_dir = out
    assert name.startswith("api-") and env_dir == str(parent / name)
    left = {p.name for p in parent.iterdir()}
    assert f"api-{os.getppid()}" in left and "api-999999999" not in left


@pytest.mark.unit
def test_a_second_supervisor_on_one_state_folder_refuses_and_names_the_first(
        tmp_path: Path) -> None:
    with Supervisor(tmp_path) as first:
        first.note_urls({"API": "http://127.0.0.1:8123"})
        assert lock_holder(tmp_path) == os.getpid()
        with pytest.raises(AlreadyRunning, match=rf"supervisor pid {os.getpid()}.*8123"), \
                Supervisor(tmp_path):
            pass
        record, _ = recorded_status(tmp_path)
        assert record is not None and record.urls == {"API": "http://127.0.0.1:8123"}
    assert lock_holder(tmp_path) is None
    assert recorded_status(tmp_path) == (None, [])


@pytest.mark.unit
def test_the_stack_names_its_rules_by_absolute_path_from_a_relative_state_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a relative state folder, as the defaults once were
    monkeypatch.chdir(tmp_path)
    stack = NativeStack(state_dir=Path(".orchestrator/stack"), api_targets=["127.0.0.1:1"],
                        agent_targets=[])
    stack.write_configs()
    config = tmp_path / ".orchestrator" / "stack" / "prometheus.yml"
    [rules] = yaml.safe_load(config.read_text())["rule_files"]
    # Then Prometheus is told the absolute path, and promtool finds every rule there
    assert Path(rules) == tmp_path / ".orchestrator" / "stack" / "rules.yml"
    checked = subprocess.run(["promtool", "check", "config", str(config)], cwd="/",
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr
