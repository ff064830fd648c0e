"""What an agent function gets besides its input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LlmEndpoint:
    """The OpenAI-compatible chat-completions endpoint agents call (``ORCH_LLM_*``)."""

    base_url: str
    api_key: str
    model: str
    timeout_s: float


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
        """Note one model call (the runtime turns these into metrics)."""
        self.model_calls.append({"model": model, "tokens_in": tokens_in,
                                 "tokens_out": tokens_out, "latency_s": latency_s})
