"""The header count of ``LimitedHttpToolsProtocol`` over every way a connection's bytes can be
cut into reads: keep-alive and pipelined requests, with and without bodies, reads from 1 byte to
many requests long. Nothing at or under the limit is ever refused; without ``Content-Length``
bodies the count is exact; after one, a pipelined request gets at most twice the limit in.
In process, with uvicorn's own app driver and a recording transport (no server)."""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from service.api.http_limits import LimitedHttpToolsProtocol

pytestmark = pytest.mark.unit

LIMIT = 1000


async def echo(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: Any) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default)


def request(header_bytes: int, body: bytes, chunked: bool) -> bytes:
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Content-Length: %d\r\n" % len(
        body)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n" + framing + b"\r\n"
    head = head.replace(b"X-Pad: ", b"X-Pad: " + b"a" * (header_bytes - len(head)))
    assert len(head) == header_bytes
    if chunked:
        return head + (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    return head + body


async def serve(stream: bytes, reads: random.Random) -> list[int]:
    """The statuses answered to ``stream``, cut into reads of random sizes."""
    config = Config(app=echo, http=LimitedHttpToolsProtocol, log_level="error")
    config.load()
    protocol = LimitedHttpToolsProtocol(config, ServerState(), {}, asyncio.get_running_loop())
    protocol._max_header_bytes = LIMIT  # the settings are read once per process
    transport = Recording()
    protocol.connection_made(transport)
    position = 0
    while position < len(stream) and not transport.closed:
        if transport.reading:
            size = reads.choice([1, 7, 100, LIMIT - 1, LIMIT, LIMIT + 1, 5000, 100_000])
            protocol.data_received(stream[position:position + size])
            position += size
        for _ in range(5):
            await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return [int(code) for code in re.findall(rb"HTTP/1.1 (\d{3}) ", bytes(transport.out))]


@pytest.mark.parametrize("bodies", [[0], [0, 0, 5, 500, 2000]], ids=["no-body", "bodies"])
async def test_each_request_is_counted_on_its_own_however_the_reads_fall(
        bodies: list[int]) -> None:
    exact = bodies == [0]
    for seed in range(400):
        rnd = random.Random(seed)
        sizes = [rnd.choice([rnd.randint(80, LIMIT), LIMIT, LIMIT + 1, rnd.randint(80, 3000)])
                 for _ in range(rnd.randint(1, 6))]
        stream = b"".join(
            request(size, bytes(rnd.choice(b"ab\r\n") for _ in range(rnd.choice(bodies))),
                    chunked=rnd.random() < 0.3)
            for size in sizes)
        got = await serve(stream, rnd)
        first_over = next((i for i, size in enumerate(sizes) if size > LIMIT), len(sizes))
        # refused only ever past the limit, and everything before the refusal was served
        assert all(status == 200 for status in got[:-1]), (seed, sizes, got)
        if got and got[-1] == 431:
            assert sizes[len(got) - 1] > LIMIT, (seed, sizes, got)
        assert len(got) >= min(first_over + 1, len(sizes)), (seed, sizes, got)
        served = sizes[:len(got)] if got[-1:] != [431] else sizes[:len(got) - 1]
        if exact:
            assert got == [200] * first_over + [431] * (first_over < len(sizes)), (
                seed, sizes, got)
        else:
            assert all(size <= 2 * LIMIT for size in served), (seed, sizes, got)
