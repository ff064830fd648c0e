"""A local fake of the OpenAI chat-completions API for tests and drills (stdlib only): the model
API is an outside SaaS that cannot be reached from here, so this speaks its protocol.

The reply is deterministic: content is ``"echo: " + <last user message>``, and token counts
are whitespace-separated word counts. A request with ``"stream": true`` gets it as server-sent
``chat.completion.chunk`` objects, one word each (and the usage last, when ``stream_options``
asks for it). Every request is recorded for assertions.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               404: "not_found_error", 429: "rate_limit_error"}


@dataclass
class RecordedRequest:
    """One request the fake received; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeLLM:
    """State of a running fake: where it listens, what it got, what it should do next."""

    base_url: str = ""
    requests: list[RecordedRequest] = field(default_factory=list)
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    """Pause between the chunks of a streamed answer."""
    response_model: str | None = None
    _failures: list[tuple[int, str, str | None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def fail_next(self, status: int, times: int = 1, message: str | None = None,
                  retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` and an OpenAI-style error body
        (and a ``Retry-After`` header, when given)."""
        text = message or f"fake LLM failure with HTTP {status}"
        with self._lock:
            self._failures.extend([(status, text, retry_after)] * times)

    def _next_failure(self) -> tuple[int, str, str | None] | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            return next(self._ids)


def _words(value: Any) -> int:
    return len(value.split()) if isinstance(value, str) else 0


def completion(body: dict[str, Any], number: int, model: str | None) -> dict[str, Any]:
    """The deterministic chat.completion object for a valid request ``body``."""
    messages = body["messages"]
    last_user = next((m.get("content") for m in reversed(messages)
                      if m.get("role") == "user"), "")
    words = ("echo: " + (last_user if isinstance(last_user, str) else "")).split()
    finish = "stop"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and len(words) > max_tokens:
        words, finish = words[:max_tokens], "length"
    prompt_tokens = sum(_words(m.get("content")) for m in messages)
    return {
        "id": f"chatcmpl-fake-{number}", "object": "chat.completion",
        "created": int(time.time()), "model": model or body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                     "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(words),
                  "total_tokens": prompt_tokens + len(words)},
    }


def _handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = None
            headers = {k.lower(): v for k, v in self.headers.items()}
            number = fake._record(RecordedRequest("POST", self.path, headers, body))
            if fake.delay_s:
                time.sleep(fake.delay_s)
            failure = fake._next_failure()
            if failure:
                self._error(*failure)
            elif self.path != "/v1/chat/completions":
                self._error(404, f"Unknown request URL: POST {self.path}")
            elif not isinstance(body, dict) or not body.get("model"):
                self._error(400, "you must provide a model parameter")
            elif not isinstance(body.get("messages"), list) or not body["messages"]:
                self._error(400, "'messages' must be a non-empty array")
            elif body.get("stream"):
                self._stream(completion(body, number, fake.response_model),
                             bool((body.get("stream_options") or {}).get("include_usage")))
            else:
                self._send(200, completion(body, number, fake.response_model))

        def _stream(self, whole: dict[str, Any], include_usage: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            choice = whole["choices"][0]
            words = choice["message"]["content"].split(" ")
            head = {k: whole[k] for k in ("id", "created", "model")}
            for n, word in enumerate(words):
                self._event({**head, "object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": {"content": word if n == 0 else " " + word},
                     "finish_reason": choice["finish_reason"] if n == len(words) - 1
                     else None}]})
                if fake.chunk_delay_s:
                    time.sleep(fake.chunk_delay_s)
            if include_usage:
                self._event({**head, "object": "chat.completion.chunk", "choices": [],
                             "usage": whole["usage"]})
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True

        def _event(self, chunk: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()

        def _error(self, status: int, message: str, retry_after: str | None = None) -> None:
            kind = ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
            self._send(status, {"error": {"message": message, "type": kind,
                                          "param": None, "code": None}},
                       {"Retry-After": retry_after} if retry_after else {})

        def _send(self, status: int, payload: dict[str, Any],
                  headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet

    return Handler


def serve_fake_llm(port: int = 0) -> tuple[FakeLLM, ThreadingHTTPServer]:
    """Serve the fake on 127.0.0.1:``port`` (0: any) in a background thread until
    ``server.shutdown()``."""
    fake = FakeLLM()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(fake))
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                     name="fake-llm", daemon=True).start()
    return fake, server


@contextmanager
def running_fake_llm() -> Iterator[FakeLLM]:
    """Run the fake on 127.0.0.1 (ephemeral port) in a background thread for the block."""
    fake, server = serve_fake_llm()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
