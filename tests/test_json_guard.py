"""Request bodies nested deeper than ``ORCH_MAX_JSON_DEPTH`` (64) get a 400 that says so, before
any decoder recurses into them: never a 500, never an ERROR line feeding the 5xx alerts."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.json_nesting import nesting_exceeds
from tests.services import Env
from tests.tasks import submit, wait_for

LIMIT = 64
TOO_DEEP = f"nesting deeper than {LIMIT} levels"


def nested(depth: int) -> str:
    """A task body whose JSON nests ``depth`` levels, the body object included."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return f'{{"agent": "echo", "input": {inner}}}'


def api_log(env: Env) -> str:
    return "".join(p.output() for p in env.processes if p.log_path.name.startswith("api-"))


async def post(client: httpx.AsyncClient, body: str) -> httpx.Response:
    return await client.post("/v1/tasks", content=body.encode(),
                             headers={"Content-Type": "application/json"})


# --- against the real API ----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_a_body_nested_deeper_than_the_limit_is_a_400_saying_so(
        client: httpx.AsyncClient, env: Env, depth: int) -> None:
    # Given the API's log so far
    logged_before = len(api_log(env))
    # When a body nests far deeper than the limit
    response = await post(client, nested(depth))
    # Then it is a 400 in the API's error format that says what to fix
    assert response.status_code == 400, response.text[:500]
    body = response.json()
    assert body["status"] == 400
    assert TOO_DEEP in body["detail"] and "ORCH_MAX_JSON_DEPTH" in body["detail"]
    # and the API still answers, and logged no ERROR line (the 5xx alerts' feed)
    assert (await client.get("/v1/tasks", params={"limit": 1})).status_code == 200
    await asyncio.sleep(0.2)
    logged = api_log(env)[logged_before:]
    assert "ERROR" not in logged and "RecursionError" not in logged, logged[-2000:]


@pytest.mark.integration
async def test_a_body_exactly_at_the_limit_is_accepted_and_runs(
        client: httpx.AsyncClient) -> None:
    # When the body nests exactly 64 levels (the body object is the first)
    response = await post(client, nested(LIMIT))
    # Then it is accepted, and the echo agent returns the input unchanged
    assert response.status_code == 202, response.text
    task = await wait_for(client, response.json()["id"])
    assert task["status"] == "succeeded", task
    assert task["result"] == json.loads(nested(LIMIT))["input"]
    # and one level more is refused
    assert (await post(client, nested(LIMIT + 1))).status_code == 400


@pytest.mark.integration
async def test_brackets_inside_strings_are_not_nesting(client: httpx.AsyncClient) -> None:
    # Given strings full of brackets, an escaped quote among them
    text = "[[[[{{{{" * 5_000 + '\\"[[[[' + "{" * 1_000
    payload = {"text": text, "list": ["[" * 200, "{" * 200], "[[[": "]]]"}
    # When they are submitted
    task = await submit(client, "echo", payload)
    # Then they are accepted and echoed back exactly
    done = await wait_for(client, task["id"])
    assert done["status"] == "succeeded" and done["result"] == payload


@pytest.mark.integration
async def test_an_unauthenticated_deep_body_is_still_a_client_error(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=15) as anonymous:
        response = await anonymous.post("/v1/tasks", content=nested(5_000).encode(),
                                        headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 401), response.text[:300]


# --- the check itself --------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(("body", "deepest"), [
    (b"", 0),
    (b"{}", 1),
    (b'{"a": [1, {"b": []}]}', 4),
    (b"[[[[]]]]", 4),
    (b"[" * 70, 70),  # unclosed: the decoder would still recurse
    (b"[]" * 1000, 1),
    (b'["[[[[[[", "\\"[[[[", {"k": "{{{{{{"}]', 2),
    (b'[[["unterminated [[[[[[[[[[[[', 3),
    (b"[[]]][[[", 2),  # a stray close: the decoder stops there
])
def test_nesting_is_measured_outside_strings(body: bytes, deepest: int) -> None:
    assert not nesting_exceeds(body, deepest)
    if deepest:
        assert nesting_exceeds(body, deepest - 1)


@pytest.mark.unit
def test_many_shallow_brackets_are_within_the_limit_and_a_deep_run_among_them_is_not() -> None:
    shallow = b"[" + b'{"a": [1, 2], "b": {"c": "[[["}},' * 20_000 + b"{}]"
    assert not nesting_exceeds(shallow, LIMIT)
    deep = shallow[:-1] + b"," + b"[" * LIMIT + b"]" * LIMIT + b"]"
    assert nesting_exceeds(deep, LIMIT)
    # unbalanced: 60 levels closed, then 10 left open (invalid JSON, but not too deep)
    assert not nesting_exceeds(b"[" * 60 + b"]" * 60 + b"[" * 10, LIMIT)
    assert nesting_exceeds(b"[" * 60 + b"[" * 10 + b"]" * 5, LIMIT)


def reference_depth(body: bytes) -> tuple[int, bool]:
    """The deepest nesting of ``body`` a JSON decoder reads one byte at a time, up to the first
    close with nothing open (where it fails), and whether there is such a close."""
    depth = deepest = 0
    in_string = escaped = False
    for char in body.decode():
        if in_string:
            in_string = escaped or char != '"'
            escaped = not escaped and char == "\\"
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
            if depth < 0:
                return deepest, True
    return deepest, False


tricky_text = st.text(alphabet='[]{}"\\ab', max_size=8)
json_trees = st.recursive(st.none() | st.integers() | tricky_text,
                          lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(tricky_text, inner, max_size=3), max_leaves=40)


@pytest.mark.unit
@settings(max_examples=500, deadline=None, derandomize=True)
@given(tree=json_trees, cut=st.floats(0, 1), brackets=st.text(alphabet="[]{}", max_size=40),
       limit=st.integers(0, 12))
def test_nesting_agrees_with_a_byte_by_byte_reading(tree: object, cut: float, brackets: str,
                                                    limit: int) -> None:
    # Given valid JSON with brackets, quotes and backslashes in its strings, a prefix of it
    # (unclosed brackets, maybe an unterminated string), and unbalanced brackets alone
    text = json.dumps(tree).encode()
    for body in (text, text[:int(len(text) * cut)], brackets.encode(),
                 text + brackets.encode()):
        # Then the check says "too deep" exactly when a decoder would go deeper than the limit
        deepest, stray_close = reference_depth(body)
        too_deep = nesting_exceeds(body, limit)
        if stray_close:  # invalid before the end: it may err towards "too deep", never back
            assert too_deep or deepest <= limit, body
        else:
            assert too_deep == (deepest > limit), body
