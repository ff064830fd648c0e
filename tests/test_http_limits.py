"""The API server's own bounds on a request before the app sees it: the size of the request line
and headers (431), the time to send them (408) and the connections one server process serves
(503), against a real ``orchestrator api`` and raw sockets (an HTTP client would refuse to send
most of this).

``ORCH_MAX_CONNECTIONS`` is uvicorn's ``limit_concurrency``: when a request's headers are
complete, uvicorn answers 503 (``text/plain`` "Service Unavailable", and closes the connection)
if the process holds that many connections *including the requesting one* (idle keep-alive
ones count, and connections not yet accepted by the process do not) or runs that many requests.
So with ``ORCH_MAX_CONNECTIONS=4``, requests are served while at most 3 connections are open,
and a request on a 4th gets 503; the test holds idle keep-alive connections (not in-flight
requests: the API has no endpoint that stays in flight on demand), which makes it
deterministic.
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.services import Env, Proc, free_port, start_api

pytestmark = pytest.mark.integration

LIMIT = 65_536
"""``ORCH_MAX_HEADER_BYTES``'s default."""
MiB = 1 << 20


@dataclass
class Api:
    url: str
    proc: Proc

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def rss_bytes(self) -> int:
        """The server process's resident memory (one server worker: the process started)."""
        status = Path(f"/proc/{self.proc.popen.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) * 1024

    def connect(self, timeout_s: float = 5) -> Conn:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s)
        sock.settimeout(timeout_s)
        return Conn(sock)


@contextlib.contextmanager
def own_api(env: Env, **settings: str) -> Iterator[Api]:
    url = start_api(env, environ=env.with_vars(**settings))
    api = Api(url, env.processes[-1])
    try:
        yield api
    finally:
        api.proc.terminate()


@pytest.fixture(scope="module")
def api(env: Env) -> Iterator[Api]:
    """An API with the default limits, of this module's own (its memory is measured)."""
    with own_api(env) as server:
        yield server


@pytest.fixture(scope="module")
def quick_timeout_api(env: Env) -> Iterator[Api]:
    with own_api(env, header_timeout_s="1") as server:
        yield server


def request(header_bytes: int | None = None, path: str = "/health/live") -> bytes:
    """A GET whose request line and headers are exactly ``header_bytes`` long (padded with an
    ``X-Pad`` header), or as short as it gets."""
    head = f"GET {path} HTTP/1.1\r\nHost: test\r\n".encode()
    if header_bytes is None:
        return head + b"\r\n"
    pad = header_bytes - len(head) - len(b"X-Pad: \r\n\r\n")
    assert pad >= 0
    return head + b"X-Pad: " + b"a" * pad + b"\r\n\r\n"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict[str, object]:
        assert self.headers["content-type"] == "application/json", self.headers
        body = dict(json.loads(self.body))
        assert body["status"] == self.status, body
        assert isinstance(body["detail"], str) and body["detail"], body
        return body


class Conn:
    """A client connection that reads answers off a socket (keeping what it read ahead)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole answer: {self.buffer!r}")
        self.buffer += chunk

    def answer(self) -> Answer:
        """One HTTP/1.1 answer with a Content-Length."""
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in
                   (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(lines[0].split()[1]), headers, body)

    def closed_by_server(self, timeout_s: float = 3) -> bytes | None:
        """What the server still sends until it closes the connection (``None``: not closed
        in time)."""
        self.sock.settimeout(timeout_s)
        rest, self.buffer = self.buffer, b""
        try:
            while chunk := self.sock.recv(65536):
                rest += chunk
        except ConnectionResetError:  # closed with the client's bytes unread: a reset
            return rest
        except TimeoutError:
            return None
        return rest


def send_streaming(conn: Conn, head: bytes, total: int, deadline_s: float) -> int:
    """Send ``head`` and then ``a`` bytes up to ``total`` (as one endless header line), until
    the server stops taking them or ``deadline_s``; the bytes sent."""
    sent = 0
    chunk = b"a" * MiB
    end = time.monotonic() + deadline_s
    try:
        conn.send(head)
        while sent < total and time.monotonic() < end:
            conn.send(chunk)
            sent += len(chunk)
    except OSError:  # reset or broken pipe: the server closed
        pass
    return sent


class Traffic:
    """Ordinary ``GET /health/live`` requests in a loop on two keep-alive connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    status = client.get("/health/live").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.latencies.append(time.perf_counter() - start)
                if status != 200:
                    self.failures.append(f"status {status}")
                time.sleep(0.005)


# --- size ------------------------------------------------------------------------------------


def test_huge_headers_get_431_at_once_and_do_not_slow_down_other_requests(api: Api) -> None:
    rss_before = api.rss_bytes()
    with Traffic(api.url) as traffic:
        time.sleep(1)
        calm = sorted(traffic.latencies)
        attack_start = len(traffic.latencies)
        # a 1 MiB header, five times: 431 right away, and the connection closed
        took = []
        for _ in range(5):
            conn = api.connect()
            payload = request(header_bytes=MiB)
            sender = threading.Thread(target=send_streaming,
                                      args=(conn, payload, 0, 10), daemon=True)
            start = time.perf_counter()
            sender.start()
            answer = conn.answer()
            took.append(time.perf_counter() - start)
            assert answer.status == 431, answer
            assert str(LIMIT) in str(answer.problem()["detail"])
            assert answer.headers["connection"] == "close"
            assert conn.closed_by_server() is not None, "the connection stays open"
            sender.join(10)
            conn.sock.close()
        # a 300 MiB header streamed as fast as the client can: the same, at no memory cost
        conn = api.connect()
        peak = [api.rss_bytes()]
        streamed = [0]

        def stream() -> None:
            streamed[0] = send_streaming(conn, request()[:-2] + b"X-Big: ", 300 * MiB, 60)

        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        answer = conn.answer()
        while sender.is_alive():
            peak.append(api.rss_bytes())
            sender.join(0.05)
        assert answer.status == 431, answer
        time.sleep(0.3)
    growth = max(peak) - rss_before
    latencies = sorted(traffic.latencies[attack_start:])
    print(f"\n431 after {statistics.median(took) * 1000:.1f} ms (median of 5 x 1 MiB),"
          f" max {max(took) * 1000:.1f} ms; 300 MiB stream: {streamed[0] / MiB:.0f} MiB sent"
          f" before the server closed; RSS growth {growth / MiB:.1f} MiB; other requests"
          f" before: p50 {statistics.median(calm) * 1000:.2f} ms; during: {len(latencies)},"
          f" p50 {statistics.median(latencies) * 1000:.2f} ms,"
          f" max {latencies[-1] * 1000:.1f} ms")
    assert max(took) < 2, took
    assert not traffic.failures, traffic.failures[:5]
    assert len(latencies) > 10
    assert latencies[-1] < 1, latencies[-5:]
    assert growth < 50 * MiB, growth


def test_headers_up_to_the_limit_are_served_and_one_byte_more_is_431(api: Api) -> None:
    for size, status in ((60 * 1024, 200), (LIMIT, 200), (LIMIT + 1, 431)):
        with api.connect() as conn:
            conn.send(request(header_bytes=size))
            assert conn.answer().status == status, size
    # on a keep-alive connection, and pipelined (two requests in one send), each request counts
    # on its own
    with api.connect() as conn:
        for _ in range(3):
            conn.send(request(header_bytes=LIMIT))
            assert conn.answer().status == 200
        conn.send(request(header_bytes=1000) + request(header_bytes=LIMIT))
        assert [conn.answer().status for _ in range(2)] == [200, 200]
        conn.send(request(header_bytes=LIMIT) + request(header_bytes=LIMIT + 1))
        assert conn.answer().status == 200
        answer = conn.answer()
        assert answer.status == 431
        answer.problem()
        assert conn.closed_by_server() is not None


# --- time ------------------------------------------------------------------------------------


def test_a_request_whose_headers_stop_half_way_gets_408_and_is_closed(
        quick_timeout_api: Api) -> None:
    with quick_timeout_api.connect() as conn:
        start = time.perf_counter()
        conn.send(b"GET /health/live HTTP/1.1\r\nHost: test\r\n")
        answer = conn.answer()
        took = time.perf_counter() - start
        assert answer.status == 408, answer
        assert "ORCH_HEADER_TIMEOUT_S" in str(answer.problem()["detail"])
        assert answer.headers["connection"] == "close"
        assert conn.closed_by_server() is not None
    print(f"\n408 after {took:.2f} s")
    assert 0.9 < took < 3
    # and a connection that never sends a byte
    with quick_timeout_api.connect() as conn:
        start = time.perf_counter()
        assert conn.answer().status == 408
        assert 0.9 < time.perf_counter() - start < 3
    # and a request that trickles in, after one that was answered on the same connection
    with quick_timeout_api.connect() as conn:
        conn.send(request())
        assert conn.answer().status == 200
        start = time.perf_counter()
        with contextlib.suppress(OSError):  # the server closes while bytes still come
            for byte in b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n":
                conn.send(bytes([byte]))
                time.sleep(0.1)  # 4 s in all
        assert conn.answer().status == 408
        assert 0.9 < time.perf_counter() - start < 3


def test_an_idle_keep_alive_connection_gets_no_408(quick_timeout_api: Api) -> None:
    """Between requests the keep-alive timeout applies (uvicorn's 5 s), not the header one."""
    with quick_timeout_api.connect(timeout_s=10) as conn:
        conn.send(request())
        assert conn.answer().status == 200
        time.sleep(2.5)  # past the header timeout: still open
        conn.send(request())
        assert conn.answer().status == 200
        start = time.perf_counter()
        assert conn.closed_by_server(timeout_s=10) == b""  # closed, without a 408
        assert time.perf_counter() - start > 4


# --- connections -----------------------------------------------------------------------------


def test_connections_beyond_max_connections_get_503(env: Env) -> None:
    with own_api(env, max_connections="4") as api:
        held = [api.connect() for _ in range(3)]
        try:
            for held_conn in held:  # each served, then idle on keep-alive
                held_conn.send(request())
                assert held_conn.answer().status == 200
            for _ in range(2):
                with api.connect() as extra:  # a 4th connection
                    extra.send(request())
                    answer = extra.answer()
                    assert answer.status == 503, answer
                    assert answer.body == b"Service Unavailable"
                    assert answer.headers["connection"] == "close"
                    assert extra.closed_by_server() == b""
            held.pop().sock.close()
            time.sleep(0.3)
            with api.connect() as extra:  # 3 connections open, this one included
                extra.send(request())
                assert extra.answer().status == 200
            for held_conn in held:  # the held ones were served all along
                held_conn.send(request())
                assert held_conn.answer().status == 200
        finally:
            for held_conn in held:
                held_conn.sock.close()


def test_metrics_can_be_served_on_an_internal_port_only(env: Env) -> None:
    """With ORCH_API_METRICS_PORT the exposition moves to that port: the public port answers
    404 for it, and the metrics port serves nothing else."""
    metrics_port = free_port()
    url = start_api(env, environ=env.with_vars(api_metrics_port=str(metrics_port)))
    internal = f"http://127.0.0.1:{metrics_port}"
    page = httpx.get(f"{internal}/metrics", timeout=10)
    assert page.status_code == 200 and "orchestrator_http_requests_total" in page.text
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 404
    assert httpx.get(f"{internal}/health/live", timeout=10).status_code == 404
    assert httpx.get(f"{url}/health/live", timeout=10).status_code == 200
