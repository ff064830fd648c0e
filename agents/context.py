"""What an agent function gets besides its input."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

ModelError = Literal["timeout", "rate_limited", "server_error", "invalid_response",
                     "unreachable", "refused"]
"""How a model call failed: no answer in time, 429, 5xx, an answer that is no completion, no
connection, another 4xx."""
MODEL_ERRORS: tuple[ModelError, ...] = ("timeout", "rate_limited", "server_error",
                                        "invalid_response", "unreachable", "refused")


@dataclass(frozen=True)
class LlmEndpoint:
    """The OpenAI-compatible chat-completions endpoint agents call (``ORCH_LLM_*``)."""

    base_url: str
    api_key: str
    model: str
    timeout_s: float
    client: httpx.AsyncClient | None = None
    """The process's one HTTP client (its connection pool); ``None``: a call makes its own."""
    stream: bool = False
    """Ask for streamed completions (``ORCH_LLM_STREAM``): pieces reach the task's stream."""


Report = Callable[[Literal["progress", "output"], dict[str, Any]], Awaitable[Any]]
"""Where the runtime sends what an agent reports while it runs (the task's stream)."""


@dataclass
class TaskContext:
    """The task being run, the model endpoint, a place to record model usage, and the task's
    stream for progress and partial output."""

    task_id: str
    agent: str
    attempt: int
    max_attempts: int
    worker_id: str
    llm: LlmEndpoint
    model_calls: list[dict[str, Any]] = field(default_factory=list)
    report: Report | None = None
    """``None`` (an agent called outside a worker): reports are kept in ``reported``."""
    reported: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def progress(self, fraction: float, message: str = "") -> None:
        """Tell followers how far the task is (``fraction`` from 0 to 1) and what it does."""
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
                or not math.isfinite(fraction) or not 0 <= fraction <= 1:
            raise ValueError(f"progress fraction must be a number from 0 to 1, not {fraction!r}")
        if not isinstance(message, str):
            raise TypeError(f"progress message must be text, not {type(message).__name__}")
        await self._send("progress", {"attempt": self.attempt, "fraction": float(fraction),
                                      "message": message})

    async def emit(self, chunk: Any) -> None:
        """Send a piece of partial output (text, or any JSON value) to followers, in order."""
        await self._send("output", {"attempt": self.attempt, "chunk": chunk})

    async def _send(self, kind: Literal["progress", "output"], data: dict[str, Any]) -> None:
        if self.report is None:
            self.reported.append((kind, data))
        else:
            await self.report(kind, data)

    def record_model_call(self, model: str, tokens_in: int, tokens_out: int,
                          latency_s: float) -> None:
        """Note one model call (the runtime turns these into metrics, the task's tokens and
        cost, and the agent's token budget)."""
        self.model_calls.append({"model": model, "tokens_in": tokens_in,
                                 "tokens_out": tokens_out, "latency_s": latency_s,
                                 "error": None})

    def record_model_error(self, model: str, kind: ModelError, latency_s: float) -> None:
        """Note a model call that failed (counted by kind; it spent no tokens)."""
        self.model_calls.append({"model": model, "tokens_in": 0, "tokens_out": 0,
                                 "latency_s": latency_s, "error": kind})
