"""The ``llm`` agent against a local fake of the OpenAI chat-completions API."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from agents.builtin.llm import llm
from agents.context import LlmEndpoint, TaskContext
from agents.errors import AgentError, NonRetryableError, RetryLater
from agents.registry import get_agent
from operations.drills.fake_llm import FakeLLM, running_fake_llm

pytestmark = pytest.mark.unit

KEY = "sk-test-secret-123"


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with running_fake_llm() as server:
        yield server


def make_ctx(base_url: str, api_key: str = KEY, timeout_s: float = 60.0) -> TaskContext:
    return TaskContext(task_id="t1", agent="llm", attempt=1, max_attempts=3, worker_id="w",
                       llm=LlmEndpoint(base_url, api_key, "test-model", timeout_s))


async def test_prompt_round_trip_sends_openai_payload_and_records_usage(fake: FakeLLM) -> None:
    ctx = make_ctx(fake.base_url)
    result = await llm({"prompt": "say hello to the team"}, ctx)

    assert len(fake.requests) == 1
    sent = fake.requests[0]
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.body == {"model": "test-model",
                         "messages": [{"role": "user", "content": "say hello to the team"}]}
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"

    assert result["model"] == "test-model"
    assert result["content"] == "echo: say hello to the team"
    assert result["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    assert 0 < result["latency_s"] < 5
    assert ctx.model_calls == [{"model": "test-model", "tokens_in": 5, "tokens_out": 6,
                                "latency_s": result["latency_s"], "error": None}]


async def test_messages_model_and_options_are_passed_through(fake: FakeLLM) -> None:
    fake.response_model = "served-model-2024"
    messages = [{"role": "system", "content": "be brief"},
                {"role": "user", "content": "one two three four"}]
    ctx = make_ctx(fake.base_url + "/", api_key="")
    result = await llm({"messages": messages, "model": "big-model", "max_tokens": 3,
                        "temperature": 0.2}, ctx)

    sent = fake.requests[0]
    assert sent.path == "/v1/chat/completions"  # trailing slash in the base URL is handled
    assert sent.body == {"model": "big-model", "messages": messages, "max_tokens": 3,
                         "temperature": 0.2}
    assert "authorization" not in sent.headers
    assert result["content"] == "echo: one two"
    assert result["finish_reason"] == "length"
    assert result["model"] == "served-model-2024"
    assert ctx.model_calls[0]["model"] == "served-model-2024"
    assert (ctx.model_calls[0]["tokens_in"], ctx.model_calls[0]["tokens_out"]) == (6, 3)


def test_agent_is_registered() -> None:
    spec = get_agent("llm")
    assert spec is not None and spec.fn is llm


@pytest.mark.parametrize("status", [500, 502, 429])
async def test_server_errors_and_rate_limits_are_retryable(fake: FakeLLM, status: int) -> None:
    fake.fail_next(status, message="try again later")
    ctx = make_ctx(fake.base_url)
    with pytest.raises(AgentError) as info:
        await llm({"prompt": "hi"}, ctx)
    assert not isinstance(info.value, NonRetryableError)
    message = str(info.value)
    assert f"HTTP {status}" in message and fake.base_url in message
    assert "try again later" in message and KEY not in message
    kind = "rate_limited" if status == 429 else "server_error"
    assert [(c["error"], c["tokens_in"]) for c in ctx.model_calls] == [(kind, 0)]
    # the failure was one-shot: the next call succeeds
    assert (await llm({"prompt": "hi"}, ctx))["content"] == "echo: hi"


async def test_client_error_is_permanent_and_carries_server_message(fake: FakeLLM) -> None:
    fake.fail_next(400, message="Invalid value for 'temperature'")
    with pytest.raises(NonRetryableError) as info:
        await llm({"prompt": "hi"}, make_ctx(fake.base_url))
    assert "HTTP 400" in str(info.value)
    assert "Invalid value for 'temperature'" in str(info.value)
    assert KEY not in str(info.value)


async def test_wrong_path_is_permanent(fake: FakeLLM) -> None:
    base = fake.base_url.removesuffix("/v1")
    with pytest.raises(NonRetryableError, match=r"HTTP 404: Unknown request URL"):
        await llm({"prompt": "hi"}, make_ctx(base))


async def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(AgentError, match="not reachable") as info:
        await llm({"prompt": "hi"}, make_ctx(url))
    assert not isinstance(info.value, NonRetryableError)
    assert url in str(info.value) and KEY not in str(info.value)


async def test_timeout_is_retryable(fake: FakeLLM) -> None:
    fake.delay_s = 1.0
    with pytest.raises(AgentError, match=r"timed out after 0\.2s") as info:
        await llm({"prompt": "hi"}, make_ctx(fake.base_url, timeout_s=0.2))
    assert not isinstance(info.value, NonRetryableError)


@pytest.mark.parametrize(("payload", "expected"), [
    ("hi", "input must be an object"),
    ({}, 'exactly one of "prompt"'),
    ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, 'exactly one of "prompt"'),
    ({"prompt": ""}, '"prompt" must be a non-empty string'),
    ({"messages": []}, '"messages" must be a non-empty list'),
    ({"messages": [{"content": "no role"}]}, '"messages" must be a non-empty list'),
    ({"prompt": "a", "model": 3}, '"model" must be a non-empty string'),
    ({"prompt": "a", "max_tokens": 0}, '"max_tokens" must be a whole number'),
    ({"prompt": "a", "temperature": 5}, '"temperature" must be a number from 0 to 2'),
])
async def test_invalid_input_is_permanent_and_sends_nothing(
        fake: FakeLLM, payload: Any, expected: str) -> None:
    with pytest.raises(NonRetryableError) as info:
        await llm(payload, make_ctx(fake.base_url))
    assert expected in str(info.value)
    assert fake.requests == []


@pytest.mark.parametrize("status", [429, 503])
async def test_a_retry_after_asks_to_come_back_later(fake: FakeLLM, status: int) -> None:
    fake.fail_next(status, retry_after="7")
    ctx = make_ctx(fake.base_url)
    with pytest.raises(RetryLater) as info:
        await llm({"prompt": "hi"}, ctx)
    assert info.value.after_s == 7.0 and f"HTTP {status}" in str(info.value)


async def test_a_streamed_completion_emits_each_piece_in_order_and_keeps_the_usage(
        fake: FakeLLM) -> None:
    ctx = make_ctx(fake.base_url)
    ctx.llm = LlmEndpoint(fake.base_url, KEY, "test-model", 60.0, stream=True)
    result = await llm({"prompt": "one two three four"}, ctx)

    sent = fake.requests[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert ctx.reported == [("output", {"attempt": 1, "chunk": piece})
                            for piece in ["echo:", " one", " two", " three", " four"]]
    assert result["content"] == "echo: one two three four"
    assert result["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
    assert ctx.model_calls[0]["tokens_out"] == 5 and ctx.model_calls[0]["error"] is None

    whole = make_ctx(fake.base_url)
    whole.llm = ctx.llm
    assert (await llm({"prompt": "one", "stream": False}, whole))["content"] == "echo: one"
    assert "stream" not in fake.requests[1].body and whole.reported == []


async def test_a_streamed_request_refused_with_retry_after_comes_back_later(
        fake: FakeLLM) -> None:
    ctx = make_ctx(fake.base_url)
    ctx.llm = LlmEndpoint(fake.base_url, KEY, "test-model", 60.0, stream=True)
    fake.fail_next(429, retry_after="7")
    with pytest.raises(RetryLater) as raised:
        await llm({"prompt": "hi"}, ctx)
    assert raised.value.after_s == 7
    assert ctx.model_calls[0]["error"] == "rate_limited" and ctx.reported == []
    with pytest.raises(NonRetryableError, match='"stream" must be true or false'):
        await llm({"prompt": "hi", "stream": "yes"}, ctx)


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), True, "half"])
async def test_progress_outside_zero_to_one_is_refused(fraction: Any) -> None:
    ctx = make_ctx("http://unused")
    with pytest.raises(ValueError, match="from 0 to 1"):
        await ctx.progress(fraction)
    await ctx.progress(0.5, "half way")
    assert ctx.reported == [("progress", {"attempt": 1, "fraction": 0.5,
                                          "message": "half way"})]
