"""What an agent function gets besides its input."""

from __future__ import annotations

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


@dataclass
class TaskContext:
    """The task being run, the model endpoint, and a place to record model usage."""

    task_id: str
    agent: str
    attempt: int
    max_attempts: int
    worker_id: str
    llm: LlmEndpoint
    model_calls: list[dict[str, Any]] = field(default_factory=list)

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
