"""``submit --follow`` and ``follow``: a task's stream (``GET /v1/tasks/{id}/stream``) printed as
it comes. Output goes to stdout as the agent emits it; progress and the timeline go to stderr.
A dropped connection is resumed where it stopped (``Last-Event-ID``)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import httpx

from orchestrator.client import ApiError, Client

RECONNECT_S = 1.0
READ_TIMEOUT_S = 45.0
"""Longer than the server's keep-alive interval: silence this long means a dead connection."""


@dataclass
class Event:
    """One server-sent event."""

    event: str = "message"
    id: str | None = None
    data: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads("\n".join(self.data))


def parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Server-sent events from the lines of a ``text/event-stream`` body (comments skipped)."""
    current = Event()
    for line in lines:
        if not line:
            if current.data:
                yield current
            current = Event()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            current.event = value
        elif name == "id":
            current.id = value
        elif name == "data":
            current.data.append(value)


def follow(client: Client, task_id: str, timeout_s: float, *, out: IO[str] = sys.stdout,
           err: IO[str] = sys.stderr) -> dict[str, Any] | None:
    """Print the task's stream until its end event (returns the final task) or ``timeout_s``
    (returns ``None``)."""
    started = time.monotonic()
    last_id: str | None = None
    printer = Printer(out, err, started)
    while time.monotonic() - started < timeout_s:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            with client.http.stream("GET", f"/v1/tasks/{task_id}/stream", headers=headers,
                                    timeout=httpx.Timeout(10.0, read=READ_TIMEOUT_S)) as answer:
                if answer.status_code >= 400:
                    answer.read()
                    raise ApiError(f"HTTP {answer.status_code}: {_detail(answer)}")
                for event in parse_events(answer.iter_lines()):
                    last_id = event.id or last_id
                    if event.event == "end":
                        printer.close()
                        return dict(event.json)
                    printer.show(event)
                    if time.monotonic() - started >= timeout_s:
                        break
        except httpx.HTTPError as exc:
            printer.note(f"stream interrupted ({type(exc).__name__}); resuming")
            time.sleep(RECONNECT_S)
    printer.close()
    return None


class Printer:
    """Output chunks to ``out`` as they come; progress and transitions to ``err``."""

    def __init__(self, out: IO[str], err: IO[str], started: float) -> None:
        self.out, self.err, self.started = out, err, started
        self.mid_line = False

    def show(self, event: Event) -> None:
        data = event.json
        if event.event == "output":
            chunk = data["chunk"]
            self.out.write(chunk if isinstance(chunk, str) else json.dumps(chunk) + "\n")
            self.out.flush()
            self.mid_line = isinstance(chunk, str) and not chunk.endswith("\n")
        elif event.event == "progress":
            message = f" {data['message']}" if data.get("message") else ""
            self.note(f"{data['fraction'] * 100:3.0f}%{message} (attempt {data['attempt']})")
        elif event.event == "timeline":
            self.note(f"{data['kind']} -> {data['status']} (attempt {data['attempt']})")

    def note(self, text: str) -> None:
        self.close()
        print(f"  {time.monotonic() - self.started:6.1f}s  {text}", file=self.err, flush=True)

    def close(self) -> None:
        """End a line of output the agent left open."""
        if self.mid_line:
            self.out.write("\n")
            self.out.flush()
            self.mid_line = False


def _detail(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
