"""Following a task live: ``GET /v1/tasks/{id}/stream`` carries the timeline, the agent's
progress and its streamed output in order, ends with the final task, and a reconnect with
``Last-Event-ID`` resumes exactly after the last event received."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from operations.drills.fake_llm import FakeLLM
from orchestrator.follow import Event, parse_events
from tests.services import ORCHESTRATOR, Env, api_client, create_key, start_agent, start_api
from tests.tasks import submit

pytestmark = pytest.mark.integration

WORDS = [f"w{n}" for n in range(49)]
"""The fake answers "echo:" and the prompt, one word per chunk: 50 chunks."""


async def events_of(client: httpx.AsyncClient, task_id: str, last_id: str | None = None,
                    stop_after_outputs: int | None = None) -> list[Event]:
    """The stream's events, to its end (or until that many output events arrived)."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    got: list[Event] = []
    async with client.stream("GET", f"/v1/tasks/{task_id}/stream", headers=headers,
                             timeout=httpx.Timeout(30.0)) as answer:
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        async for event in _events(answer.aiter_lines()):
            got.append(event)
            outputs = sum(1 for e in got if e.event == "output")
            if event.event == "end" or outputs == stop_after_outputs:
                break
    return got


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    buffered: list[str] = []
    async for line in lines:
        buffered.append(line)
        if not line:
            for event in parse_events(iter(buffered)):
                yield event
            buffered = []


def chunks(events: list[Event]) -> list[str]:
    return [e.json["chunk"] for e in events if e.event == "output"]


@pytest.fixture
def slow_chunks(fake_llm: FakeLLM) -> Any:
    fake_llm.chunk_delay_s = 0.02  # about a second of streaming: followed live
    yield fake_llm
    fake_llm.chunk_delay_s = 0.0


async def test_an_llm_tasks_chunks_arrive_in_order_then_its_final_state(
        client: httpx.AsyncClient, slow_chunks: FakeLLM) -> None:
    task = await submit(client, "llm", {"prompt": " ".join(WORDS)})
    events = await events_of(client, task["id"])

    assert chunks(events) == ["echo:", *(" " + w for w in WORDS)]
    assert all(e.json["attempt"] == 1 for e in events if e.event == "output")
    assert events[-1].event == "end"
    final = events[-1].json
    assert final["status"] == "succeeded"
    assert final["result"]["content"] == "echo: " + " ".join(WORDS)
    assert (final["tokens_in"], final["tokens_out"]) == (49, 50)  # usage came in the stream
    timeline = [e.json["kind"] for e in events if e.event == "timeline"]
    assert timeline[0] == "submitted" and timeline[-1] == "succeeded"
    started = next(n for n, e in enumerate(events) if e.event == "timeline"
                   and e.json["kind"] == "started")
    first_chunk = next(n for n, e in enumerate(events) if e.event == "output")
    done = next(n for n, e in enumerate(events) if e.event == "timeline"
                and e.json["kind"] == "succeeded")
    assert started < first_chunk and done > max(
        n for n, e in enumerate(events) if e.event == "output")
    ids = [e.id for e in events[:-1]]  # the end moves no cursor: it repeats the last id
    assert None not in ids and len(set(ids)) == len(ids) and events[-1].id == ids[-1]
    sent = slow_chunks.requests[-1].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_a_reconnect_with_last_event_id_misses_nothing_and_repeats_nothing(
        client: httpx.AsyncClient, slow_chunks: FakeLLM) -> None:
    task = await submit(client, "llm", {"prompt": " ".join(WORDS)})
    first = await events_of(client, task["id"], stop_after_outputs=10)  # the client drops
    assert len(chunks(first)) == 10
    rest = await events_of(client, task["id"], last_id=first[-1].id)

    assert chunks(first) + chunks(rest) == ["echo:", *(" " + w for w in WORDS)]
    whole = await events_of(client, task["id"])  # from the start, after the end: a replay
    assert [(e.event, e.id) for e in first + rest] == [(e.event, e.id) for e in whole]
    assert rest[-1].event == "end" and rest[-1].json["status"] == "succeeded"
    after_end = await events_of(client, task["id"], last_id=rest[-1].id)
    assert [e.event for e in after_end] == ["end"]  # gone after the last event: told it ended


async def test_progress_is_streamed_and_a_stream_without_output_ends_too(
        own_env: Env) -> None:
    url = start_api(own_env)
    start_agent(own_env, "--agents", "sleep,echo")
    async with api_client(own_env, url) as client:
        task = await submit(client, "sleep", {"seconds": 0.6, "steps": 3})
        events = await events_of(client, task["id"])
        progress = [e.json for e in events if e.event == "progress"]
        assert [(p["fraction"], p["message"]) for p in progress] == [
            (pytest.approx(1 / 3), "step 1 of 3"), (pytest.approx(2 / 3), "step 2 of 3"),
            (1.0, "step 3 of 3")]
        assert events[-1].event == "end" and events[-1].json["status"] == "succeeded"

        quiet = await submit(client, "echo", {"n": 1})
        events = await events_of(client, quiet["id"])
        assert [e.event for e in events][-1] == "end"
        assert not [e for e in events if e.event in ("output", "progress")]

        bad = await client.get(f"/v1/tasks/{quiet['id']}/stream",
                               headers={"Last-Event-ID": "yesterday"})
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["detail"]
        missing = await client.get("/v1/tasks/00000000-0000-4000-8000-000000000000/stream")
        assert missing.status_code == 404


async def test_another_tenants_task_cannot_be_followed(
        env: Env, client: httpx.AsyncClient) -> None:
    task = await submit(client, "echo", {"mine": True})
    other = create_key(env, tenant="someone-else")
    answer = await client.get(f"/v1/tasks/{task['id']}/stream",
                              headers={"Authorization": f"Bearer {other}"})
    assert answer.status_code == 404


async def test_the_stream_ends_when_the_api_stops_and_resumes_on_another(
        own_env: Env) -> None:
    first_url = start_api(own_env)
    start_agent(own_env, "--agents", "sleep")
    async with api_client(own_env, first_url) as client:
        task = await submit(client, "sleep", {"seconds": 6, "steps": 6})
        stream = asyncio.create_task(events_of(client, task["id"]))
        await asyncio.sleep(2.5)
        first_api = next(p for p in own_env.processes if "api" in p.popen.args)
        first_api.popen.terminate()
        got = await asyncio.wait_for(stream, 10)  # ends at once, not after the grace period
        assert first_api.popen.wait(10) == 0
        assert got and got[-1].event != "end"
        second_url = start_api(own_env)
        async with api_client(own_env, second_url) as again:
            rest = await events_of(again, task["id"], last_id=got[-1].id)
    steps = [e.json["message"] for e in got + rest if e.event == "progress"]
    assert steps == [f"step {n} of 6" for n in range(1, 7)]
    assert rest[-1].event == "end" and rest[-1].json["status"] == "succeeded"


def test_submit_follow_prints_the_output_as_it_comes(
        env: Env, api_url: str, api_key: str, worker: None, slow_chunks: FakeLLM) -> None:
    environ = {**os.environ, **env.environ, "ORCH_API_URL": api_url, "ORCH_API_KEY": api_key}
    done = subprocess.run([*ORCHESTRATOR, "submit", "llm", json.dumps({"prompt": "a b c"}),
                           "--follow"], env=environ, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("echo: a b c\n")
    assert "started -> running" in done.stderr and "succeeded" in done.stdout

    as_json = subprocess.run([*ORCHESTRATOR, "submit", "llm", json.dumps({"prompt": "x y"}),
                              "--follow", "--json"], env=environ, capture_output=True,
                             text=True, timeout=60)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["result"]["content"] == "echo: x y"
    assert "echo: x y" in as_json.stderr  # the streamed output, kept off the JSON


async def test_a_stream_asked_not_live_gives_what_is_there_and_closes(
        client: httpx.AsyncClient) -> None:
    waiting = await submit(client, "echo", {"later": True}, delay_s=3600)  # never due here
    answer = await client.get(f"/v1/tasks/{waiting['id']}/stream", params={"live": "false"})
    assert answer.status_code == 200
    events = list(parse_events(iter(answer.text.splitlines())))
    assert [e.json["kind"] for e in events] == ["submitted"]  # and closed, the task unfinished
    await client.post(f"/v1/tasks/{waiting['id']}/cancel")
    answer = await client.get(f"/v1/tasks/{waiting['id']}/stream", params={"live": "false"})
    events = list(parse_events(iter(answer.text.splitlines())))
    assert [e.event for e in events] == ["timeline", "timeline", "end"]
    assert events[-1].json["status"] == "cancelled"
