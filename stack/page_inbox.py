"""A local page inbox that speaks the PagerDuty Events API v2, so a developer sees the pages
Alertmanager sends (``orchestrator stack pages``). Also takes the chat webhook's posts, and
serves the runbook the pages link to (``/runbook``): it stays up when the API is down.

    python -m stack.page_inbox --port 9094 --store .orchestrator/stack/pages.jsonl \
        --runbook .orchestrator/stack/runbook.html
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

EVENTS_PATH = "/v2/enqueue"
CHAT_PATH = "/chat"
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


def problems(event: Any) -> list[str]:
    """What PagerDuty would reject in an Events API v2 event (empty when valid)."""
    if not isinstance(event, dict):
        return ["the body must be a JSON object"]
    found = []
    if not event.get("routing_key"):
        found.append("routing_key is required")
    if event.get("event_action") not in ACTIONS:
        found.append(f"event_action must be one of {', '.join(ACTIONS)}")
    if event.get("event_action") == "trigger":
        payload = event.get("payload") or {}
        for name in ("summary", "source"):
            if not payload.get(name):
                found.append(f"payload.{name} is required")
        if payload.get("severity") not in SEVERITIES:
            found.append(f"payload.severity must be one of {', '.join(SEVERITIES)}")
    elif not event.get("dedup_key"):
        found.append("dedup_key is required to acknowledge or resolve")
    return found


def read_pages(store: Path) -> Iterator[dict[str, Any]]:
    """Every stored entry: ``{"received_at", "kind": pagerduty|chat|rejected, "event"}``."""
    if store.exists():
        text = store.read_text()
        for line in text[:text.rfind("\n") + 1].splitlines():  # a line being written waits
            if line.strip():
                yield json.loads(line)


@dataclass(frozen=True)
class Inbox:
    """Reads what the inbox received (``orchestrator stack pages``, drills and tests)."""

    store: Path

    def entries(self, kind: str = "pagerduty") -> list[dict[str, Any]]:
        return [e for e in read_pages(self.store) if e["kind"] == kind]

    def events(self, kind: str = "pagerduty") -> list[Any]:
        return [e["event"] for e in self.entries(kind)]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                 timeout_s: float) -> dict[str, Any]:
        """The first PagerDuty entry whose event matches (bounded polling)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for entry in self.entries():
                if predicate(entry["event"]):
                    return entry
            if time.monotonic() > deadline:
                got = [f"{e.get('event_action')} {(e.get('payload') or {}).get('summary', '')}"
                       for e in self.events()]
                raise TimeoutError(f"no matching page within {timeout_s}s; got {got}")
            time.sleep(0.1)


def make_handler(store: Path, runbook: Path | None = None) -> type[BaseHTTPRequestHandler]:
    writing = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except json.JSONDecodeError:
                body = None
            if self.path == CHAT_PATH:
                self._store("chat", body)
                self._answer(200, {"status": "ok"})
            elif self.path == EVENTS_PATH:
                errors = problems(body)
                if errors:
                    self._store("rejected", {"event": body, "errors": errors})
                    self._answer(400, {"status": "invalid event", "message": "; ".join(errors)})
                    return
                dedup = body.get("dedup_key") or f"inbox-{time.time_ns()}"
                self._store("pagerduty", body)
                self._answer(202, {"status": "success", "message": "Event processed",
                                   "dedup_key": dedup})
            else:
                self._answer(404, {"status": "not found", "message": self.path})

        def do_GET(self) -> None:
            if self.path == "/pages":
                self._answer(200, list(read_pages(store)))
            elif self.path.split("?")[0] == "/runbook" and runbook is not None:
                page = runbook.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
            else:
                self._answer(200, {"status": "ok"})

        def _store(self, kind: str, body: Any) -> None:
            line = json.dumps({"received_at": time.time(), "kind": kind, "event": body}) + "\n"
            with writing, store.open("a") as out:  # one whole line at a time
                out.write(line)

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def serve(host: str, port: int, store: Path,
          runbook: Path | None = None) -> ThreadingHTTPServer:
    store.parent.mkdir(parents=True, exist_ok=True)
    return ThreadingHTTPServer((host, port), make_handler(store, runbook))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9094)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--runbook", type=Path, help="the runbook page to serve at /runbook")
    args = parser.parse_args(argv)
    server = serve(args.host, args.port, args.store, args.runbook)
    print(f"page inbox on http://{args.host}:{server.server_address[1]}{EVENTS_PATH}",
          flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
