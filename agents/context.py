"""What an agent function gets besides its input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.settings import Settings


@dataclass
class TaskContext:
    """The task being run, and a place to record model usage for AI agents."""

    task_id: str
    agent: str
    attempt: int
    max_attempts: int
    worker_id: str
    settings: Settings
    model_calls: list[dict[str, Any]] = field(default_factory=list)

    def record_model_call(self, model: str, tokens_in: int, tokens_out: int,
                          latency_s: float) -> None:
        """Note one model call (the runtime turns these into metrics)."""
        self.model_calls.append({"model": model, "tokens_in": tokens_in,
                                 "tokens_out": tokens_out, "latency_s": latency_s})
