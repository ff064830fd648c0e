"""No secret leaves a process: every known secret shape is fed through every sink (the JSON log,
the human log, spans, a task's error, HTTP error bodies, the settings' repr) and none of it comes
out. Secrets are concrete samples; PII a scrubber cannot recognise must not be copied into error
texts at all."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.exceptions import InternalServerException, NotAuthorizedException
from litestar.testing import TestClient
from loguru import logger
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from agents.builtin.llm import build_request
from agents.builtin.summarize import summarize
from agents.context import LlmEndpoint, TaskContext
from service.api.errors import EXCEPTION_HANDLERS, INTERNAL_ERROR
from service.settings import Settings
from service.telemetry.logs import configure_logging
from service.telemetry.scrub import error_text, scrub
from service.telemetry.tracing import ScrubbingExporter
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan, running_otlp_receiver
from tests.services import Env, Proc, api_client, create_env, destroy_env, start_agent, start_api
from tests.tasks import events, submit, wait_for

PASSWORD = "S3cretPw"
BASIC = "dXNlcjpTM2NyZXRQdw=="  # base64 of "user:S3cretPw"
ORCH_KEY = "orch_" + "Zq7Kx2Vb9Lm4Np0Rs8Tu1Wy3Ac6Ef5Gh7Jk9Mn2Pq4S"  # 43 url-safe characters
SK_KEY = "sk-" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7d"  # 40 characters
SAMPLES = (
    f"postgresql://u:{PASSWORD}@h/db",
    f"redis://:{PASSWORD}@h:6379/0",
    f"amqp://u:{PASSWORD}@h/",
    f"password={PASSWORD}",
    f"host=h port=5432 dbname=db user=u password={PASSWORD} sslmode=disable",
    f"Authorization: Basic {BASIC}",
    f"Bearer {ORCH_KEY}",
    ORCH_KEY,
    SK_KEY,
    f"https://u:{PASSWORD}@h/",
)
SECRETS = (PASSWORD, BASIC, ORCH_KEY.removeprefix("orch_"), SK_KEY.removeprefix("sk-"))
"""The substrings that must never come out (the parts a scrubber masks)."""
LEAKY = " | ".join(SAMPLES)
"""One text holding every sample."""
PII = "jane.doe@example.com"
"""Task input no pattern recognises: error texts must not copy it."""


def assert_no_secret(text: str) -> None:
    leaked = [secret for secret in (*SECRETS, PII) if secret in text]
    assert not leaked, f"{leaked} in:\n{text[-4000:]}"


# -- the scrubber ------------------------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("sample", SAMPLES)
def test_every_secret_shape_is_masked(sample: str) -> None:
    # Given a text with one secret; When it is scrubbed; Then the secret is gone, and scrubbing
    # again changes nothing
    shown = scrub(f"failed with {sample} (retrying)")
    assert_no_secret(shown)
    assert "***" in shown
    assert scrub(shown) == shown


@pytest.mark.unit
@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql://u:S3cretPw@h/db", "postgresql://u:***@h/db"),
    ("redis://:S3cretPw@h:6379/0", "redis://:***@h:6379/0"),
    ("https://u:S3cretPw@h/", "https://u:***@h/"),
    ("dsn user=u password=S3cretPw host=h", "dsn user=u password=*** host=h"),
    ("password='S3 cret' host=h", "password='***' host=h"),
    ('{"password": "S3cretPw"}', '{"password": "***"}'),
    ("Authorization: Basic dXNlcjpTM2NyZXRQdw==", "Authorization: Basic ***"),
    (f"Bearer {ORCH_KEY}", "Bearer ***"),
    (f"key {ORCH_KEY}.", "key orch_***."),
    (f"key {SK_KEY}", "key sk-***"),
])
def test_the_scrubber_keeps_what_is_not_secret(text: str, shown: str) -> None:
    assert scrub(text) == shown


@pytest.mark.unit
@pytest.mark.parametrize("text", [
    "GET http://127.0.0.1:8000/v1/tasks?limit=5 answered 200",
    "postgresql://postgres@127.0.0.1:5432/orchestrator",
    "max_tokens=64 prompt_tokens=12 completion_tokens=7",
    "a basic example of a task-runner",
    "ValueError: invalid literal for int() with base 10: 'x'",
])
def test_the_scrubber_leaves_ordinary_text_alone(text: str) -> None:
    assert scrub(text) == text


# -- settings ----------------------------------------------------------------------------------

@pytest.mark.unit
def test_settings_never_show_a_secret_yet_keep_it_usable() -> None:
    # Given settings holding every secret they can hold
    environ = {
        "ORCH_DATABASE_URL": SAMPLES[0], "ORCH_REDIS_URL": SAMPLES[1],
        "ORCH_AMQP_URL": SAMPLES[2], "ORCH_LLM_BASE_URL": f"https://u:{PASSWORD}@llm/v1",
        "ORCH_LLM_API_KEY": SK_KEY, "ORCH_API_KEY": ORCH_KEY, "ORCH_DEV_API_KEY": ORCH_KEY,
        "ORCH_PAGERDUTY_ROUTING_KEY": f"R0uting{PASSWORD}",
        "ORCH_DATABASE_PASSWROD": PASSWORD,  # a typo: kept in ``extra``
    }
    settings = Settings.from_env(environ)
    # When they are printed, whole or by section
    shown = [repr(settings), str(settings), f"{settings.database} {settings.llm}",
             repr(settings.api), repr(settings.stack), repr(settings.broker),
             repr(settings.redis)]
    # Then no secret shows, the URLs keep their hosts, and the values are still the real ones
    for text in shown:
        assert_no_secret(text)
    assert "postgresql://u:***@h/db" in repr(settings.database)
    assert "redis://:***@h:6379/0" in repr(settings.redis)
    assert settings.database.url == SAMPLES[0]
    assert settings.llm.api_key == SK_KEY
    assert settings.api.key == settings.api.dev_key == ORCH_KEY
    assert settings.stack.pagerduty_routing_key == f"R0uting{PASSWORD}"
    assert settings.extra == {"ORCH_DATABASE_PASSWROD": PASSWORD}
    assert "api_key=''" in repr(Settings.from_env({}).llm)  # an unset secret says so


# -- logs --------------------------------------------------------------------------------------

def _connect(dsn: str) -> None:
    token = ORCH_KEY  # locals a traceback with variables would print
    raise ConnectionError(f"could not connect (token of {len(token)} chars)")


def _log_every_secret() -> None:
    for sample in SAMPLES:
        logger.info("connecting with {}", sample)
    logger.bind(task_id="t-1", dsn=SAMPLES[0]).warning("retrying: {}", LEAKY)
    logging.getLogger("psycopg").warning("pool: %s unreachable", LEAKY)
    try:
        _connect(SAMPLES[0])
    except ConnectionError:
        logger.exception("connect failed")
    try:
        raise RuntimeError(LEAKY)
    except RuntimeError:
        logger.exception("broker lost")


@pytest.mark.unit
def test_json_log_lines_carry_no_secret_but_keep_the_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    # Given JSON logging on stdout and into a file
    log_file = tmp_path / "process.log"
    configure_logging(Settings.from_env({"ORCH_LOG_FILE": str(log_file)}).telemetry, "test")
    capsys.readouterr()
    # When every secret is logged, in messages and in tracebacks
    _log_every_secret()
    logger.remove()  # flushes the file
    out = capsys.readouterr().out
    # Then neither output holds a secret, and the tracebacks are there
    for text in (out, log_file.read_text()):
        lines = [json.loads(raw) for raw in text.splitlines()]
        assert len(lines) == len(SAMPLES) + 4, text
        assert_no_secret(text)
        tracebacks = [line["exception"] for line in lines if "exception" in line]
        assert len(tracebacks) == 2
        assert "in _connect" in tracebacks[0] and "ConnectionError" in tracebacks[0]
        assert "RuntimeError" in tracebacks[1]


@pytest.mark.unit
def test_human_log_lines_carry_no_secret_and_no_local_variables(
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    # Given the human log format on stderr
    configure_logging(Settings.from_env({"ORCH_LOG_FORMAT": "human"}).telemetry, "test")
    capsys.readouterr()
    # When every secret is logged, in messages and in tracebacks with secrets in their locals
    _log_every_secret()
    err = capsys.readouterr().err
    # Then no secret shows, the tracebacks are there, without the values of variables
    assert_no_secret(err)
    assert "Traceback" in err and "in _connect" in err and "ConnectionError" in err
    assert "└" not in err  # loguru's marker under a variable's value


# -- spans -------------------------------------------------------------------------------------

def _memory_tracer() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ScrubbingExporter(memory)))
    return provider, memory


def _span_texts(span: ReadableSpan) -> str:
    parts: list[Any] = [span.name, dict(span.attributes or {}), span.status.description]
    parts += [(event.name, dict(event.attributes or {})) for event in span.events]
    return repr(parts)


URL_KEYS = ("http.url", "url.full", "http.target", "url.path")


@pytest.mark.unit
def test_spans_keep_no_query_string_and_no_secret() -> None:
    # Given spans exported through the scrubbing exporter
    provider, memory = _memory_tracer()
    tracer = provider.get_tracer("test")
    query = f"token={ORCH_KEY}&password={PASSWORD}"
    # When a server span has URLs with query strings and records an exception with secrets,
    # and a client span has credentials in its URL, an event and a status with secrets
    with pytest.raises(RuntimeError), tracer.start_as_current_span(
            "GET /v1/tasks", kind=SpanKind.SERVER, attributes={
                "http.url": f"http://api:8000/v1/tasks?{query}",
                "url.full": f"http://api:8000/v1/tasks?{query}",
                "http.target": f"/v1/tasks?{query}", "url.query": query,
                "url.path": "/v1/tasks", "http.route": "/v1/tasks"}):
        raise RuntimeError(LEAKY)
    with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes={
            "http.url": f"https://u:{PASSWORD}@llm:443/v1/chat?sig=x",
            "db.statement": f"SET password={PASSWORD}", "tags": list(SAMPLES)}) as span:
        span.add_event("retry", {"reason": LEAKY})
        span.set_status(Status(StatusCode.ERROR, LEAKY))
    # Then no span holds a secret or a query string, and the paths are kept
    server, client = memory.get_finished_spans()
    assert_no_secret(_span_texts(server) + _span_texts(client))
    attributes = dict(server.attributes or {})
    assert attributes["http.url"] == attributes["url.full"] == "http://api:8000/v1/tasks"
    assert attributes["http.target"] == "/v1/tasks" == attributes["url.path"]
    assert "url.query" not in attributes
    assert [event.name for event in server.events] == ["exception"]
    assert "RuntimeError" in str(dict(server.events[0].attributes or {}))
    assert dict(client.attributes or {})["http.url"] == "https://u:***@llm:443/v1/chat"


@pytest.mark.unit
async def test_the_server_instrumentation_records_no_query_string() -> None:
    # Given the official ASGI instrumentation exporting through the scrubbing exporter
    provider, memory = _memory_tracer()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    traced = OpenTelemetryMiddleware(app, tracer_provider=provider,
                                     exclude_spans=["receive", "send"])
    # When a request carries secrets in its query string
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=traced),
                                 base_url="http://api") as client:
        await client.get("/v1/tasks", params={"token": ORCH_KEY, "dsn": SAMPLES[0]})
    # Then the server span keeps the path only
    (span,) = memory.get_finished_spans()
    assert span.kind == SpanKind.SERVER
    assert_no_secret(_span_texts(span))
    attributes = dict(span.attributes or {})
    assert any(key in attributes for key in URL_KEYS), attributes
    for key in URL_KEYS:
        assert "?" not in str(attributes.get(key, "")), attributes


# -- task errors -------------------------------------------------------------------------------

@pytest.mark.unit
def test_a_task_error_is_scrubbed_and_bounded() -> None:
    text = error_text(RuntimeError(LEAKY))
    assert text.startswith("RuntimeError: ")
    assert_no_secret(text)
    assert len(error_text(ValueError("x" * 100_000), 2000)) <= 2000


def _ctx() -> TaskContext:
    return TaskContext("t-1", "summarize", 1, 3, "w-1", LlmEndpoint("http://llm", "", "m", 1.0))


@pytest.mark.unit
@pytest.mark.parametrize("payload", [
    PII, [PII], {"text": PII, "sentences": PII}, {"text": PII, "sentences": -len(PII)},
    {"text": 7, "sentences": 2}, {"text": " ", "sentences": PII},
])
async def test_summarize_errors_name_types_not_input_values(payload: Any) -> None:
    with pytest.raises(Exception) as raised:
        await summarize(payload, _ctx())
    assert_no_secret(str(raised.value))
    assert str(-len(PII)) not in str(raised.value)


@pytest.mark.unit
@pytest.mark.parametrize("payload", [
    PII, {"prompt": PII, "messages": [PII]}, {"prompt": [PII]}, {"messages": PII},
    {"prompt": "hi", "model": [PII]}, {"prompt": "hi", "max_tokens": PII},
    {"prompt": "hi", "temperature": PII},
])
def test_llm_input_errors_name_types_not_input_values(payload: Any) -> None:
    with pytest.raises(Exception) as raised:
        build_request(payload, "m")
    assert_no_secret(str(raised.value))


# -- HTTP error bodies (in process) --------------------------------------------------------------

@get("/boom", sync_to_thread=False)
def _boom() -> None:
    dsn = SAMPLES[0]  # a local a traceback with variables would print
    raise RuntimeError(f"cannot reach {dsn}: {LEAKY}")


@get("/denied", sync_to_thread=False)
def _denied() -> None:
    raise NotAuthorizedException(f"key {ORCH_KEY} rejected; {LEAKY}")


@get("/unavailable", sync_to_thread=False)
def _unavailable() -> None:
    raise InternalServerException(f"pool exhausted at {SAMPLES[0]}")


@pytest.mark.unit
def test_error_bodies_carry_no_secret_and_a_500_no_traceback(
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    # Given the API's error handlers, and logging
    configure_logging(Settings.from_env({}).telemetry, "test")
    app = Litestar([_boom, _denied, _unavailable], exception_handlers=EXCEPTION_HANDLERS,
                   debug=False)
    with TestClient(app) as client:
        # When a handler fails unexpectedly with secrets in its error and locals
        crashed = client.get("/boom")
        # or raises a 500 of its own with a text
        raised = client.get("/unavailable")
        # and a 4xx names secrets in its detail
        denied = client.get("/denied")
    # Then the 500 says nothing of the error, the 4xx nothing secret; the log has the traceback
    assert crashed.status_code == 500
    assert crashed.json() == raised.json() == {"status": 500, "detail": INTERNAL_ERROR}
    assert denied.status_code == 401
    assert_no_secret(denied.text)
    assert "key orch_*** rejected" in denied.json()["detail"]
    out = capsys.readouterr().out
    assert_no_secret(out)
    assert "RuntimeError" in out and "in _boom" in out


# -- the real processes ------------------------------------------------------------------------

@dataclass
class Exported:
    """An API and a ``fail`` agent exporting their spans to ``receiver``."""

    env: Env
    receiver: OtlpReceiver
    url: str
    api: Proc
    agent: Proc


@pytest.fixture(scope="module")
def exported(logs_dir: Path) -> Iterator[Exported]:
    environment = create_env(logs_dir)
    try:
        with running_otlp_receiver() as receiver:
            environ = environment.with_vars(otlp_endpoint=receiver.endpoint)
            url = start_api(environment, environ=environ)
            api = environment.processes[-1]
            agent = start_agent(environment, "--agents", "fail", environ=environ)
            yield Exported(environment, receiver, url, api, agent)
    finally:
        destroy_env(environment)


def _all_text(spans: list[ReceivedSpan]) -> str:
    return repr([(s.name, s.attributes) for s in spans])


@pytest.mark.integration
async def test_a_failing_agent_leaves_no_secret_in_the_task_its_logs_or_spans(
        exported: Exported) -> None:
    # Given an agent that fails with every secret in its error
    async with api_client(exported.env, exported.url) as client:
        accepted = await submit(client, "fail", {"non_retryable": True, "message": LEAKY})
        # When the task has gone dead
        task = await wait_for(client, accepted["id"])
        timeline = await events(client, task["id"])
    # Then its stored error, its events, the agent's log and the spans hold no secret
    assert task["status"] == "dead"
    assert task["error"].startswith("NonRetryableError: ")
    assert "postgresql://u:***@h/db" in task["error"]
    assert_no_secret(task["error"] + json.dumps(timeline))

    def agent_spans() -> list[ReceivedSpan]:
        spans = exported.receiver.spans_of_trace(task["trace_id"])
        return spans if any(s.name == "agent fail" for s in spans) else []

    spans = exported.receiver.wait_for(lambda _: agent_spans(), timeout=15)
    assert_no_secret(_all_text(spans))
    assert_no_secret(exported.agent.output())
    assert "task dead" in exported.agent.output()


@pytest.mark.integration
async def test_api_error_bodies_and_server_spans_hold_no_secret(exported: Exported) -> None:
    # Given the real API
    async with api_client(exported.env, exported.url) as client:
        # When requests name secrets in their query, path and (invalid) bodies
        answers = [
            await client.get("/v1/tasks", params={"agent": SAMPLES[0], "token": ORCH_KEY}),
            await client.get(f"/v1/tasks/password={PASSWORD}"),
            await client.post("/v1/tasks", json={"agent": SAMPLES[2]}),
            await client.post("/v1/tasks", json={"agent": "fail", f"password={PASSWORD}": 1}),
            await client.post("/v1/tasks", json={"agent": "fail", "priority": LEAKY}),
            await client.post("/v1/tasks", content=b'{"agent": "fail", "input": "' +
                              LEAKY.encode(), headers={"Content-Type": "application/json"}),
        ]
    # Then each is refused with a body naming no secret
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text
        assert_no_secret(answer.text)
    # and the server spans keep paths without query strings, and no secret anywhere
    servers = exported.receiver.wait_for(lambda spans: [
        s for s in spans if s.kind == "SPAN_KIND_SERVER"
        and "/v1/tasks" in str(s.attributes.get("http.target", ""))] if len(
        [s for s in spans if s.kind == "SPAN_KIND_SERVER"]) >= len(answers) else [], timeout=15)
    assert servers
    for span in servers:
        for key in URL_KEYS:
            assert "?" not in str(span.attributes.get(key, "")), span.attributes
    assert_no_secret(_all_text(exported.receiver.spans))
    assert_no_secret(exported.api.output())
