"""uvicorn's httptools protocol with a bound on the request line and headers, in bytes and in
time (httptools has neither: one endless header line is buffered, and re-concatenated, for as
long as the client sends it, and a request that stops half way holds its connection forever).

``orchestrator api`` serves with ``http=LimitedHttpToolsProtocol``:

- the bytes of each request's request line and headers (from its first byte to the end of its
  headers; every request of a keep-alive or pipelined connection) are counted as they arrive;
  more than ``ORCH_MAX_HEADER_BYTES`` gets ``431`` and the connection closed, and the parser is
  never handed more of that request than the limit (but see pipelined requests below);
- a request whose headers are not all there ``ORCH_HEADER_TIMEOUT_S`` after its first byte (or
  after the connection opened, for its first request) gets ``408`` and the connection closed.
  A keep-alive connection idle after a complete answer is uvicorn's ``timeout_keep_alive``'s.

The hot path is a counter in ``data_received`` while headers are incomplete, and a few
attributes set in two of the parser's per-request callbacks: a request whose headers arrive in
one read (almost all) costs no timer and no copy (a connection costs one timer, until its first
headers). Measured with callgrind: +0.2% instructions a ``GET /health/live`` of the API, +2% with
a trivial ASGI app.

Pipelined requests: the parser is never handed more than the limit's worth of bytes at once
while a request's headers or body may end in them. A request that begins in a slice in which the
one before it ended is counted from the end of the last header block in that slice: exact when
the request before had no body or a chunked one; after a ``Content-Length`` body, by a lower
bound (that body's bytes are subtracted), so such a request may get up to twice the limit into
the parser before it is answered 431, never more. Nothing is ever rejected below the limit.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from service.settings import get_settings

_END_OF_HEADERS = b"\r\n\r\n"
_data_received = HttpToolsProtocol.data_received
_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_body = HttpToolsProtocol.on_body
_on_message_complete = HttpToolsProtocol.on_message_complete


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with ``ORCH_MAX_HEADER_BYTES`` and ``ORCH_HEADER_TIMEOUT_S``. A
    module-level class (uvicorn pickles its config for its worker processes)."""

    # slots, not the instance dict: uvicorn's own attributes already nearly fill the keys an
    # instance dict shares with its class (30), and past them every attribute access of the
    # protocol, uvicorn's too, gets slower (3% more instructions a request, measured)
    __slots__ = ("_body_bytes", "_completed", "_header_bytes", "_header_timeout_s",
                 "_header_timer", "_in_body", "_max_header_bytes", "_rejection")

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        api = get_settings().api
        self._max_header_bytes = api.max_header_bytes
        self._header_timeout_s = api.header_timeout_s
        self._header_bytes = 0
        """Bytes of the current request's request line and headers so far (while not in_body)."""
        self._in_body = False
        """Headers complete, message not yet: bytes are body, not counted."""
        self._completed: object | None = None
        """The scope of a request that ended in the read being parsed: one that began after it
        (another scope) needs counting."""
        self._body_bytes = 0
        """Body bytes of the latest request (for a pipelined one after it)."""
        self._header_timer: asyncio.TimerHandle | None = None
        self._rejection: bytes | None = None
        """The 431 or 408 answer, once the request is rejected."""

    # --- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_body:
            if len(data) > self._max_header_bytes:  # it may end in many pipelined requests
                self._receive_in_steps(data)
                return
        else:
            count = self._header_bytes + len(data)
            if count > self._max_header_bytes:
                self._receive_in_steps(data)
                return
            self._header_bytes = count
        _data_received(self, data)
        completed = self._completed
        if completed is not None:  # once a request
            self._completed = None
            if self.scope is not completed and not self._in_body:  # the next one began
                self._count_pipelined(data, 0, len(data))
        if self._header_timer is None and self._header_bytes and not self._in_body:
            self._start_header_timer()  # the read left headers incomplete

    # --- the parser's callbacks -------------------------------------------------------------

    # (the base class's methods called directly: ``super()`` makes an object every call)

    def on_headers_complete(self) -> None:
        self._in_body = True
        self._body_bytes = 0
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        _on_headers_complete(self)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        _on_body(self, body)

    def on_message_complete(self) -> None:
        self._in_body = False
        self._header_bytes = 0
        self._completed = self.scope
        _on_message_complete(self)

    # --- the rare paths ---------------------------------------------------------------------

    def _feed(self, data: bytes, start: int, end: int) -> None:
        """Parse ``data[start:end]``."""
        _data_received(self, memoryview(data)[start:end])  # type: ignore[arg-type]
        completed = self._completed
        if completed is not None:
            self._completed = None
            if self.scope is not completed and not self._in_body:
                self._count_pipelined(data, start, end)

    def _count_pipelined(self, data: bytes, start: int, end: int) -> None:
        """A request began in ``data[start:end]`` after another one ended in it: its bytes are
        those after the last header block in it (less the body of the one before)."""
        if self._stopped():
            return
        if self._header_timer is None:
            self._start_header_timer()
        # not found: the end of the request before is in an earlier read (maybe 3 bytes of it)
        last = data.rfind(_END_OF_HEADERS, max(0, start - 3), end)
        tail = end - (last + len(_END_OF_HEADERS)) if last >= 0 else end - start - 3
        self._header_bytes = max(0, tail - self._body_bytes)
        if self._header_bytes > self._max_header_bytes:
            self._too_large()

    def _receive_in_steps(self, data: bytes) -> None:
        """Parse ``data`` a slice at a time, none longer than the limit: headers only as far as
        the limit allows (they end in it, or 431), a body in slices of the limit's size (so a
        pipelined request after it is counted). After a rejection every read ends here, and
        is dropped."""
        start = 0
        while start < len(data) and not self._stopped():
            if self._in_body:
                end = min(len(data), start + self._max_header_bytes)
                self._feed(data, start, end)
                start = end
                continue
            budget = self._max_header_bytes - self._header_bytes
            if len(data) - start <= budget:
                self._header_bytes += len(data) - start
                self._feed(data, start, len(data))
                break
            self._header_bytes = self._max_header_bytes
            self._feed(data, start, start + budget)
            start += budget
            if not self._in_body and self._header_bytes >= self._max_header_bytes \
                    and not self._stopped():
                self._too_large()  # and more bytes of these headers follow
        if self._rejection is not None:
            self.flow.pause_reading()
        elif self._header_timer is None and self._header_bytes and not self._in_body:
            self._start_header_timer()

    def _stopped(self) -> bool:
        return self._rejection is not None or self.transport.is_closing()

    def _start_header_timer(self) -> None:
        if not self._stopped():
            self._header_timer = self.loop.call_later(self._header_timeout_s,
                                                      self._header_timeout)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._in_body or self._stopped():
            return
        self._reject(408, f"request headers not complete within {self._header_timeout_s:g} s"
                          " (ORCH_HEADER_TIMEOUT_S on the server)")

    def _too_large(self) -> None:
        self._reject(431, f"request line and headers exceed {self._max_header_bytes} bytes"
                          " (ORCH_MAX_HEADER_BYTES on the server)")

    def _reject(self, status: int, detail: str) -> None:
        """Answer ``status`` with a JSON problem like the API's own, and close. The parser
        gets nothing more; answers to earlier pipelined requests still under way go first."""
        self.logger.warning("%s: %s", status, detail)
        self._stop_header_timer()
        body = json.dumps({"status": status, "detail": detail}, separators=(",", ":")).encode()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([b"content-type: application/json\r\n",
                        b"content-length: %d\r\n" % len(body),
                        b"connection: close\r\n\r\n", body])
        self._rejection = b"".join(content)
        self._in_body = False  # every further read goes to _receive_in_steps, which drops it
        self._header_bytes = self._max_header_bytes + 1
        if self.cycle is not None and not self.cycle.response_complete:
            self.flow.pause_reading()  # the last pipelined request's answer is the last one
            self.cycle.on_response = self._answer_rejection
        else:
            self.transport.write(self._rejection)
            self.transport.close()

    def _answer_rejection(self) -> None:
        """In place of ``on_response_complete`` after the last pipelined answer."""
        self.server_state.total_requests += 1
        if not self.transport.is_closing() and self._rejection is not None:
            self.transport.write(self._rejection)
            self.transport.close()
