"""A bounded, growing pool of keep-alive connections (:class:`loadtest.rawhttp.HttpConnection`).

A request takes an idle connection (most recently used first), opens a new one when all are
busy and the pool is below its bound, and otherwise waits for one to come back. Connections idle
for longer than ``idle_s`` are closed before reuse, so a request never goes out on a socket the
server has already timed out (uvicorn drops idle keep-alive connections after 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from loadtest.rawhttp import HttpConnection


class ConnectionPool:
    """Connections to one origin, at most ``max_size`` open at once."""

    def __init__(self, url: str, headers: dict[str, str], max_size: int,
                 idle_s: float = 4.0) -> None:
        if max_size < 1:
            raise ValueError("the pool needs room for at least one connection")
        self.url = url
        self.headers = headers
        self.max_size = max_size
        self.idle_s = idle_s
        self.size = 0
        self.busy = 0
        self.peak = 0
        self.opened = 0
        self.waits = 0
        """Acquisitions that found the pool full and had to wait."""
        self._idle: list[tuple[HttpConnection, float]] = []
        self._waiters: deque[asyncio.Future[HttpConnection]] = deque()

    async def acquire(self) -> HttpConnection:
        """A connection for one request; give it back with :meth:`release` or
        :meth:`discard`."""
        now = time.monotonic()
        while self._idle:
            conn, last_used = self._idle.pop()
            if now - last_used <= self.idle_s:
                self.busy += 1
                return conn
            self.size -= 1  # expired: the server may have closed it already
            await _close(conn)
        if self.size < self.max_size:
            return self._open()
        self.waits += 1
        waiter: asyncio.Future[HttpConnection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            raise

    def release(self, conn: HttpConnection) -> None:
        """Return a healthy connection after a complete exchange."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)  # stays busy: handed straight to a waiting request
                return
        self.busy -= 1
        self._idle.append((conn, time.monotonic()))

    async def discard(self, conn: HttpConnection) -> None:
        """Close a connection in an unknown state (error, timeout); a waiting request gets a
        fresh one in its place."""
        self.busy -= 1
        self.size -= 1
        await _close(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._open())
                return

    async def close(self) -> None:
        """Close every idle connection (busy ones are closed by their request)."""
        while self._idle:
            conn, _ = self._idle.pop()
            self.size -= 1
            await _close(conn)

    def _open(self) -> HttpConnection:
        """A new (lazily connecting) connection, counted as busy."""
        self.size += 1
        self.busy += 1
        self.opened += 1
        self.peak = max(self.peak, self.size)
        return HttpConnection(self.url, self.headers)


async def _close(conn: HttpConnection) -> None:
    with contextlib.suppress(OSError):
        await conn.close()
