"""Traces and logs against the real services: one trace from the HTTP request through the broker
to the agent (and through a retry), received by a real OTLP/HTTP endpoint; log lines carrying the
trace and task ids; secrets scrubbed from log output."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from loguru import logger

from service.db.keys import generate_key
from service.settings import Settings
from service.telemetry.logs import configure_logging, scrub
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan, running_otlp_receiver
from tests.services import (
    Env,
    Proc,
    api_client,
    create_env,
    destroy_env,
    start_agent,
    start_api,
    wait_until,
)
from tests.tasks import submit, wait_for

pytestmark = pytest.mark.integration

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")
API, AGENT = "orchestrator-api", "orchestrator-agent"
SERVER, CLIENT = "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT"
PRODUCER, CONSUMER, INTERNAL = "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER", "SPAN_KIND_INTERNAL"


@dataclass
class Traced:
    """An environment whose API and agent export their spans to ``receiver``."""

    env: Env
    receiver: OtlpReceiver
    url: str
    agent: Proc


@pytest.fixture(scope="module")
def traced(logs_dir: Path) -> Iterator[Traced]:
    environment = create_env(logs_dir, shutdown_grace_s="1")
    try:
        with running_otlp_receiver() as receiver:
            environ = environment.with_vars(otlp_endpoint=receiver.endpoint)
            # The API's relay publishes what the API commits (woken on submit); with a long poll
            # interval it never picks up a retry, so every retry is published by the agent.
            url = start_api(environment, environ={**environ, "ORCH_RELAY_POLL_INTERVAL_S": "60"})
            agent = start_agent(environment, "--agents", "fail,echo", environ=environ)
            yield Traced(environment, receiver, url, agent)
    finally:
        destroy_env(environment)


def _db_system(span: ReceivedSpan) -> Any:
    return span.attributes.get("db.system", span.attributes.get("db.system.name"))


def _statement(span: ReceivedSpan) -> str:
    return str(span.attributes.get("db.statement", span.attributes.get("db.query.text", "")))


def _tree(spans: list[ReceivedSpan]) -> str:
    return "\n".join(s.short() for s in sorted(spans, key=lambda s: s.start_ns))


def _orphans(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    ids = {s.span_id for s in spans}
    return [s for s in spans if s.parent_span_id is not None and s.parent_span_id not in ids]


def _task_trace_complete(spans: list[ReceivedSpan]) -> bool:
    """Everything the retried task should leave behind has arrived (and nothing is dangling)."""
    has = {(s.kind, s.name) for s in spans}
    return (has >= {(SERVER, "POST /v1/tasks"), (PRODUCER, "orch.tasks publish"),
                    (PRODUCER, "orch.delay publish")}
            and sum(s.name == "orch.agent.fail process" for s in spans) == 2
            and sum(s.name == "agent fail" for s in spans) == 2
            and not _orphans(spans))


def _wait_for_trace(receiver: OtlpReceiver, trace_id: str) -> list[ReceivedSpan]:
    try:
        receiver.wait_for(lambda _: _task_trace_complete(receiver.spans_of_trace(trace_id)),
                          timeout=15)
    except TimeoutError:
        pytest.fail(f"trace {trace_id} incomplete:\n{_tree(receiver.spans_of_trace(trace_id))}"
                    f"\nrejected exports: {receiver.rejected}")
    return receiver.spans_of_trace(trace_id)


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[str]:
    chain = []
    while span.parent_span_id is not None and span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        chain.append(span.span_id)
    return chain


async def _task_retried_once(traced: Traced) -> dict[str, Any]:
    """Run a task that fails its first attempt and succeeds on the retry; return it."""
    async with api_client(traced.env, traced.url) as client:
        task = await submit(client, "fail", {"until_attempt": 2})
        done = await wait_for(client, task["id"])
    assert done["status"] == "succeeded"
    assert done["attempts"] == 2
    return done


async def test_one_trace_spans_the_api_the_broker_and_the_agent(traced: Traced) -> None:
    # Given a task that fails its first attempt and succeeds on the retry
    task = await _task_retried_once(traced)
    # When its trace id is read back
    trace_id = task["trace_id"]
    assert isinstance(trace_id, str)
    assert HEX32.fullmatch(trace_id), trace_id
    # Then the receiver holds one trace for the request, both deliveries and the retry
    spans = _wait_for_trace(traced.receiver, trace_id)
    by_id = {s.span_id: s for s in spans}
    tree = _tree(spans)
    assert {s.service_name for s in spans} == {API, AGENT}, tree

    # the HTTP request: the one server span, the root (the client sent no traceparent)
    servers = [s for s in spans if s.kind == SERVER]
    assert len(servers) == 1, tree  # the status polls are traces of their own
    server = servers[0]
    assert server.name == "POST /v1/tasks"
    assert server.service_name == API
    assert server.attributes["http.route"] == "/v1/tasks"
    assert server.attributes.get("http.method", server.attributes.get(
        "http.request.method")) == "POST"
    assert server.attributes.get("http.status_code", server.attributes.get(
        "http.response.status_code")) == 202
    assert server.parent_span_id is None

    # the insert of the task, a psycopg span under the server span
    request_queries = [s for s in spans if _db_system(s) == "postgresql"
                       and s.parent_span_id == server.span_id]
    assert request_queries, tree
    assert all(s.kind == CLIENT and s.service_name == API for s in request_queries)
    assert any("INSERT INTO tasks" in _statement(s) for s in request_queries), tree

    # the first publish, by the API's outbox relay, continuing the request's trace
    producers = [s for s in spans if s.kind == PRODUCER]
    assert all(s.attributes["messaging.system"] == "rabbitmq" for s in producers)
    assert all(s.attributes["messaging.message.id"] == task["id"] for s in producers)
    first_publish = [s for s in producers if s.service_name == API]
    assert len(first_publish) == 1, tree
    publish = first_publish[0]
    assert publish.name == "orch.tasks publish"
    assert publish.attributes["messaging.destination.name"] == "orch.tasks"
    assert publish.attributes["messaging.rabbitmq.destination.routing_key"] == "fail"
    assert server.span_id in _ancestors(publish, by_id)

    # the retry's publish, by the agent's relay, to the delay exchange, in the same trace
    retry_publish = [s for s in producers if s.service_name == AGENT]
    assert len(retry_publish) == 1, tree
    retry = retry_publish[0]
    assert retry.name == "orch.delay publish"
    assert retry.attributes["messaging.destination.name"] == "orch.delay"
    assert server.span_id in _ancestors(retry, by_id)

    # one consumer span per delivery, each the child of (and linked to) the publish it received
    consumers = sorted((s for s in spans if s.kind == CONSUMER), key=lambda s: s.start_ns)
    assert len(consumers) == 2, tree
    for consumer in consumers:
        assert consumer.name == "orch.agent.fail process"
        assert consumer.service_name == AGENT
        assert consumer.attributes["messaging.system"] == "rabbitmq"
        assert consumer.attributes["messaging.destination.name"] == "orch.agent.fail"
        assert consumer.attributes["messaging.message.id"] == task["id"]
        assert by_id[consumer.parent_span_id or ""].kind == PRODUCER
        assert consumer.links == [(trace_id, consumer.parent_span_id)]
    assert consumers[0].parent_span_id == publish.span_id
    assert consumers[1].parent_span_id == retry.span_id
    # and each delivery's claim (and outcome) queries run inside its consumer span
    for consumer in consumers:
        queries = [s for s in spans if _db_system(s) == "postgresql"
                   and s.parent_span_id == consumer.span_id]
        assert any("UPDATE tasks SET status = 'running'" in _statement(s) for s in queries), tree

    # the agent function, one internal span per attempt, under the delivery that ran it
    agent_spans = sorted((s for s in spans if s.name == "agent fail"), key=lambda s: s.start_ns)
    assert [s.kind for s in agent_spans] == [INTERNAL, INTERNAL]
    assert [s.parent_span_id for s in agent_spans] == [c.span_id for c in consumers]
    assert [s.attributes["orchestrator.attempt"] for s in agent_spans] == [1, 2]
    assert all(s.attributes["orchestrator.task_id"] == task["id"] for s in agent_spans)
    # the retry was published after the first attempt had failed
    assert retry.start_ns >= agent_spans[0].end_ns

    # every span hangs off the request: one root, no parent outside the trace
    assert _orphans(spans) == []
    assert [s for s in spans if s.parent_span_id is None] == [server]
    assert all(server.span_id in _ancestors(s, by_id) for s in spans if s is not server), tree


def _log_lines(proc: Proc) -> list[dict[str, Any]]:
    lines = []
    for raw in proc.output().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


async def test_log_lines_of_a_task_carry_its_trace_and_task_ids(traced: Traced) -> None:
    # Given a task that ran twice (a failed attempt, then a success)
    task = done = await _task_retried_once(traced)
    trace_id = done["trace_id"]
    assert HEX32.fullmatch(trace_id)

    # When the agent's output is read (the success line follows the commit the API reads)
    def task_lines() -> list[dict[str, Any]]:
        found = [line for line in _log_lines(traced.agent) if line.get("task_id") == task["id"]]
        return found if any(line["message"] == "task succeeded" for line in found) else []

    lines = wait_until(task_lines, timeout_s=10)
    # Then every line of the task carries its trace, its delivery's span and the task's ids
    assert [line["attempt"] for line in lines] == [1, 2]
    assert lines[0]["message"].startswith("attempt failed, retry in")
    for line in lines:
        assert line["trace_id"] == trace_id
        assert HEX16.fullmatch(line["span_id"])
        assert line["agent"] == "fail"
        assert line["service"] == "agent"
        assert line["worker_id"] == done["worker_id"]
        assert line["level"] == "INFO"
        assert line["logger"] == "service.lifecycle"  # the log middleware
        assert line["time"] and line["message"]
    # and the span ids are those of the two deliveries' consumer spans, as exported
    spans = _wait_for_trace(traced.receiver, trace_id)
    consumers = sorted((s for s in spans if s.kind == CONSUMER), key=lambda s: s.start_ns)
    assert [line["span_id"] for line in lines] == [c.span_id for c in consumers]


def test_secrets_are_scrubbed_from_log_messages(capsys: pytest.CaptureFixture[str],
                                                restore_logging: None) -> None:
    key = generate_key()
    assert scrub("connect postgresql://u:secret@h/db failed") == (
        "connect postgresql://u:***@h/db failed")
    assert scrub("broker amqp://guest:guest@host/ down") == "broker amqp://guest:***@host/ down"
    assert scrub(f"rejected key {key}.") == "rejected key orch_***."
    assert scrub("Authorization: Bearer xyz.abc-123_DEF~tok") == "Authorization: Bearer ***"
    assert scrub("nothing secret in http://host:8000/v1/tasks") == (
        "nothing secret in http://host:8000/v1/tasks")

    # Given the process's JSON logging
    configure_logging(Settings.from_env({}).telemetry, service="test")
    capsys.readouterr()
    # When messages, an exception and a standard-library record mention secrets
    logger.info("database at postgresql://orch:s3cr3t-pw@db:5432/orch is slow")
    logger.bind(task_id="t-1").warning("retrying with Bearer {}", key)
    try:
        raise ConnectionError("amqp://guest:hunter2@rabbit:5672/ refused")
    except ConnectionError:
        logger.exception("broker lost")
    logging.getLogger("psycopg").warning("pool: postgresql://u:pg-pass@h/db unreachable")
    out = capsys.readouterr().out
    # Then every line is JSON with the base fields, and no secret is in the output
    lines = [json.loads(raw) for raw in out.splitlines()]
    assert len(lines) == 4, out
    for line in lines:
        assert {"time", "level", "logger", "message", "service"} <= line.keys()
        assert line["service"] == "test"
    assert lines[0]["message"] == "database at postgresql://orch:***@db:5432/orch is slow"
    assert lines[1]["task_id"] == "t-1"
    assert lines[1]["level"] == "WARNING"
    assert "ConnectionError" in lines[2]["exception"]
    assert "amqp://guest:***@rabbit:5672/" in lines[2]["exception"]
    assert lines[3]["message"] == "pool: postgresql://u:***@h/db unreachable"
    for secret in ("s3cr3t-pw", key, key.removeprefix("orch_"), "hunter2", "pg-pass"):
        assert secret not in out


async def test_without_an_exporter_requests_still_continue_or_start_traces(
        client: httpx.AsyncClient, worker: Proc) -> None:
    # the session's API exports no spans: only the ids are made, and they must still flow
    caller = "4bf92f3577b34da6a3ce929d0e0e4736"
    given = await client.post("/v1/tasks", json={"agent": "echo", "input": 1},
                              headers={"traceparent": f"00-{caller}-00f067aa0ba902b7-01"})
    assert given.status_code == 202, given.text
    assert given.json()["trace_id"] == caller
    fresh = [await submit(client, "echo", n) for n in range(2)]
    assert all(HEX32.fullmatch(task["trace_id"]) for task in fresh)
    assert len({caller, *(task["trace_id"] for task in fresh)}) == 3
    done = await wait_for(client, given.json()["id"])
    assert done["status"] == "succeeded" and done["trace_id"] == caller
    # and the agent's lines for the task continue the caller's trace, in a span of their own
    lines = wait_until(lambda: [line for line in _log_lines(worker)
                                if line.get("task_id") == done["id"]], timeout_s=10)
    assert {line["trace_id"] for line in lines} == {caller}
    assert all(HEX16.fullmatch(line["span_id"]) and line["span_id"] != "00f067aa0ba902b7"
               for line in lines)
