"""The ``llm`` agent: one chat completion against an OpenAI-compatible endpoint."""

from __future__ import annotations

import contextlib
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from agents.context import LlmEndpoint, ModelError, TaskContext
from agents.errors import AgentError, NonRetryableError, RetryLater
from agents.registry import agent

RETRYABLE_STATUS = frozenset({408, 429})
COME_BACK_STATUS = frozenset({429, 503})
"""With a ``Retry-After``, the provider says when: the retry spends no attempt."""
MAX_RETRY_AFTER_S = 3600.0


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) in seconds from now, at most an
    hour; ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


@agent("llm")
async def llm(payload: Any, ctx: TaskContext) -> dict[str, Any]:
    """Chat completion for ``{"prompt": str}`` or ``{"messages": [...]}``.

    Optional ``model`` (default ``ORCH_LLM_MODEL``), ``max_tokens``, ``temperature`` and
    ``stream`` (default ``ORCH_LLM_STREAM``: each piece of the answer goes to the task's stream
    as it comes).
    """
    endpoint = ctx.llm
    body = build_request(payload, endpoint.model, endpoint.stream)
    call = Call(endpoint, endpoint.base_url.rstrip("/") + "/chat/completions", body, ctx)
    try:
        return await (call.streamed() if body.get("stream") else call.whole())
    except httpx.TimeoutException as exc:
        call.failed("timeout")
        raise AgentError(f"LLM endpoint {call.url} timed out after {endpoint.timeout_s}s "
                         f"({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        call.failed("unreachable")
        raise AgentError(f"LLM endpoint {call.url} is not reachable ({type(exc).__name__}:"
                         f" {exc}); check ORCH_LLM_BASE_URL and that the server is up") from exc


class Call:
    """One chat-completions request, whole or streamed, and its accounting."""

    def __init__(self, endpoint: LlmEndpoint, url: str, body: dict[str, Any],
                 ctx: TaskContext) -> None:
        self.endpoint, self.url, self.body, self.ctx = endpoint, url, body, ctx
        self.model: str = body["model"]
        self.headers = {"Authorization": f"Bearer {endpoint.api_key}"} \
            if endpoint.api_key else {}
        self.started = time.perf_counter()

    @property
    def latency_s(self) -> float:
        return time.perf_counter() - self.started

    def failed(self, kind: ModelError) -> None:
        self.ctx.record_model_error(self.model, kind, self.latency_s)

    async def whole(self) -> dict[str, Any]:
        endpoint = self.endpoint
        if endpoint.client is not None:
            response = await endpoint.client.post(self.url, json=self.body, headers=self.headers,
                                                  timeout=endpoint.timeout_s)
        else:
            async with httpx.AsyncClient(timeout=endpoint.timeout_s) as client:
                response = await client.post(self.url, json=self.body, headers=self.headers)
        latency_s = self.latency_s
        try:
            _raise_for_status(response, self.url)
            data = response.json()
            choice = data["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            self.failed("invalid_response")
            raise _not_a_completion(self.url, exc) from exc
        except AgentError:
            self.failed(_kind(response.status_code))
            raise
        return self._result(data.get("model"), content, choice.get("finish_reason"),
                            data.get("usage"), latency_s)

    async def streamed(self) -> dict[str, Any]:
        """Server-sent ``chat.completion.chunk`` objects; every piece of content is emitted to
        the task's stream in order, the usage comes in the last chunk."""
        endpoint = self.endpoint
        async with contextlib.AsyncExitStack() as stack:
            client = endpoint.client if endpoint.client is not None else \
                await stack.enter_async_context(httpx.AsyncClient(timeout=endpoint.timeout_s))
            response = await stack.enter_async_context(client.stream(
                "POST", self.url, json=self.body, headers=self.headers,
                timeout=endpoint.timeout_s))
            if not 200 <= response.status_code < 300:
                await response.aread()
                try:
                    _raise_for_status(response, self.url)
                finally:
                    self.failed(_kind(response.status_code))
            pieces: list[str] = []
            model = finish = usage = None
            try:
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    model = chunk.get("model") or model
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or ():
                        text = (choice.get("delta") or {}).get("content")
                        if text:
                            pieces.append(text)
                            await self.ctx.emit(text)
                        finish = choice.get("finish_reason") or finish
            except (ValueError, AttributeError, TypeError) as exc:
                self.failed("invalid_response")
                raise _not_a_completion(self.url, exc) from exc
        return self._result(model, "".join(pieces), finish, usage, self.latency_s)

    def _result(self, model: Any, content: Any, finish_reason: Any, usage: Any,
                latency_s: float) -> dict[str, Any]:
        usage = usage if isinstance(usage, dict) else {}
        tokens_in = int(usage.get("prompt_tokens") or 0)
        tokens_out = int(usage.get("completion_tokens") or 0)
        model = str(model or self.model)
        self.ctx.record_model_call(model, tokens_in, tokens_out, latency_s)
        return {
            "model": model,
            "content": content,
            "finish_reason": finish_reason,
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                      "total_tokens": int(usage.get("total_tokens") or tokens_in + tokens_out)},
            "latency_s": latency_s,
        }


def _not_a_completion(url: str, exc: Exception) -> NonRetryableError:
    return NonRetryableError(
        f"LLM endpoint {url} sent a response that is no chat completion"
        f" ({type(exc).__name__}: {exc}); is it an OpenAI-compatible endpoint?")


def _kind(status: int) -> ModelError:
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    return "invalid_response" if 200 <= status < 300 else "refused"


def build_request(payload: Any, default_model: str, stream: bool = False) -> dict[str, Any]:
    """Validate the agent input and turn it into a chat-completions request body."""
    if not isinstance(payload, dict):
        raise NonRetryableError('llm: input must be an object with "prompt" or "messages"')
    prompt, messages = payload.get("prompt"), payload.get("messages")
    if (prompt is None) == (messages is None):
        raise NonRetryableError('llm: give exactly one of "prompt" (a string) or "messages"')
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise NonRetryableError('llm: "prompt" must be a non-empty string')
        messages = [{"role": "user", "content": prompt}]
    elif not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and m["role"]
            and isinstance(m.get("content"), str | list) for m in messages):
        raise NonRetryableError(
            'llm: "messages" must be a non-empty list of {"role": str, "content": str} objects')
    model = payload.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise NonRetryableError('llm: "model" must be a non-empty string')
    body: dict[str, Any] = {"model": model, "messages": messages}
    max_tokens = payload.get("max_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise NonRetryableError('llm: "max_tokens" must be a whole number >= 1')
        body["max_tokens"] = max_tokens
    temperature = payload.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) \
                or not 0 <= temperature <= 2:
            raise NonRetryableError('llm: "temperature" must be a number from 0 to 2')
        body["temperature"] = temperature
    streamed = payload.get("stream", stream)
    if not isinstance(streamed, bool):
        raise NonRetryableError('llm: "stream" must be true or false')
    if streamed:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _raise_for_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = f"LLM endpoint {url} returned HTTP {status}: {_error_message(response)}"
    after_s = retry_after_s(response.headers.get("Retry-After"))
    if status in COME_BACK_STATUS and after_s is not None:
        raise RetryLater(f"{detail} (Retry-After {after_s:g}s)", after_s)
    if status in RETRYABLE_STATUS or status >= 500:
        raise AgentError(detail)
    raise NonRetryableError(detail)


def _error_message(response: httpx.Response) -> str:
    """The server's own error text: OpenAI-style ``{"error": {"message": ...}}`` or the raw body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data.get("detail"))
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
    return str(data)[:500]
