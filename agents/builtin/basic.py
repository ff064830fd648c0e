"""Agents for pipelines, load tests and drills: ``echo``, ``sleep`` and ``fail``."""

from __future__ import annotations

import asyncio
from typing import Any

from agents.context import TaskContext
from agents.errors import AgentError, NonRetryableError
from agents.registry import agent


@agent("echo")
async def echo(payload: Any, ctx: TaskContext) -> Any:
    """Return the input unchanged."""
    return payload


@agent("sleep")
async def sleep(payload: Any, ctx: TaskContext) -> dict[str, Any]:
    """Sleep for ``{"seconds": s}`` (load tests, slow-agent and cancel drills); with
    ``"steps": n`` in n equal steps, reporting progress after each."""
    seconds = float(_field(payload, "seconds", 1.0))
    steps = _field(payload, "steps", 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 1000:
        raise NonRetryableError('sleep: "steps" must be a whole number from 1 to 1000')
    for step in range(1, steps + 1):
        await asyncio.sleep(seconds / steps)
        if steps > 1:
            await ctx.progress(step / steps, f"step {step} of {steps}")
    return {"slept_s": seconds}


@agent("fail")
async def fail(payload: Any, ctx: TaskContext) -> dict[str, Any]:
    """Fail on purpose: ``{"until_attempt": k}`` succeeds from attempt k on,
    ``{"always": true}`` always fails (retryable), ``{"non_retryable": true}`` fails for good
    (with ``"message"`` as its error: the one error text taken from the input, on request; the
    runtime scrubs and bounds it like any other)."""
    if _field(payload, "non_retryable", False):
        raise NonRetryableError(str(_field(payload, "message", "fail agent: non-retryable")))
    until = _field(payload, "until_attempt", None)
    if _field(payload, "always", False) or (until is not None and ctx.attempt < int(until)):
        raise AgentError(f"fail agent: attempt {ctx.attempt} fails on purpose")
    return {"succeeded_on_attempt": ctx.attempt}


def _field(payload: Any, name: str, default: Any) -> Any:
    return payload.get(name, default) if isinstance(payload, dict) else default
