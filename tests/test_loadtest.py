"""``orchestrator loadtest``: the open-model generator against the real API, SLO verdicts as exit
codes, reports, and unit tests of the histogram, the schedules, the mix and the search."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import random
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from alerts.slos import QUEUE_WAIT_TARGET_S, SLOS, ratio_record, wait_class
from loadtest import prometheus
from loadtest.findmax import SearchConfig, find_max
from loadtest.generator import LoadConfig, RunResult, run_load
from loadtest.histogram import MAX_RELATIVE_ERROR, Histogram, bucket_bounds, bucket_index
from loadtest.profiles import Constant, Ramp, Steps, expected_requests, schedule
from loadtest.report import series_rows
from loadtest.stats import RunStats
from loadtest.verdicts import BREACH, EXIT_BREACH, EXIT_OK, NO_DATA, PASS, exit_code, verdicts
from loadtest.workload import Workload, parse_mix
from tests.services import (
    ORCHESTRATOR,
    Env,
    Proc,
    create_env,
    create_key,
    destroy_env,
    start_agent,
    start_api,
)

# --- helpers ---------------------------------------------------------------------------------


def run_cli(env: Env, url: str, key: str, *args: str,
            timeout_s: float = 60) -> tuple[int, dict[str, Any], str]:
    """``orchestrator loadtest ARGS --json --quiet``: exit code, the report, stderr."""
    out = subprocess.run(
        [*ORCHESTRATOR, "loadtest", "--quiet", "--json", *args],
        env={**os.environ, **env.environ, "ORCH_API_URL": url, "ORCH_API_KEY": key},
        capture_output=True, text=True, timeout=timeout_s)
    report = json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}
    return out.returncode, report, out.stderr


def verdict(report: dict[str, Any], slo: str) -> dict[str, Any]:
    return next(v for v in report["verdicts"] if v["slo"] == slo)


# --- (a) rate accuracy and success against the running API --------------------------------------


@pytest.mark.integration
def test_sends_the_requested_count_at_the_requested_rate(env: Env, api_url: str, api_key: str,
                                                         worker: Proc) -> None:
    code, report, stderr = run_cli(env, api_url, api_key, "--rate", "50", "--requests", "200",
                                   "--mix", "echo")
    assert code == EXIT_OK, stderr
    requests = report["requests"]
    assert requests["sent"] == 200
    assert requests["accepted"] == 200
    assert abs(requests["achieved_rate"] - 50) / 50 < 0.05, requests
    assert 3.8 <= report["sending_s"] <= 4.0 * 1.05 + 1, report["sending_s"]  # 199 gaps of 20 ms
    assert report["tasks"]["succeeded"] == 200
    assert report["errors"] == {}
    assert all(v["status"] == PASS for v in report["verdicts"])
    latency = report["latency_ms"]
    assert latency["submit"]["count"] == 200 and latency["end_to_end"]["count"] == 200
    assert latency["end_to_end"]["p50_ms"] >= latency["submit"]["p50_ms"] * 0.5


# --- (b) a breach exits non-zero ----------------------------------------------------------------


@pytest.mark.integration
def test_failing_tasks_breach_the_task_success_slo(env: Env, api_url: str, api_key: str,
                                                   worker: Proc) -> None:
    code, report, stderr = run_cli(env, api_url, api_key, "--rate", "20", "--requests", "20",
                                   "--mix", "fail", "--input", 'fail={"always": true}',
                                   "--max-attempts", "1")
    assert code == EXIT_BREACH, stderr
    success = verdict(report, "task-success")
    assert success["status"] == BREACH and success["good"] == 0 and success["total"] == 20
    assert verdict(report, "api-availability")["status"] == PASS
    assert report["errors"]["task_dead"] == 20


@pytest.mark.integration
def test_a_slow_agent_breaches_the_queue_wait_slo(logs_dir: Path) -> None:
    """One sleep worker with one slot, tasks of 0.5 s arriving at 20/s: later tasks wait longer
    than the SLO's own target for their class (no drill override)."""
    sleep_s, rate = 0.5, 20.0
    target_s = wait_class("sleep").target_s
    count = math.ceil(target_s / (sleep_s - 1 / rate)) + 5  # the last 5 wait too long
    env = create_env(logs_dir)
    try:
        url = start_api(env)
        key = create_key(env)
        start_agent(env, "--agents", "sleep", "--concurrency", "1")
        code, report, stderr = run_cli(env, url, key, "--rate", str(rate), "--requests",
                                       str(count), "--mix", "sleep",
                                       "--input", f'sleep={{"seconds": {sleep_s}}}')
    finally:
        destroy_env(env)
    assert code == EXIT_BREACH, stderr
    wait = verdict(report, "queue-wait")
    assert wait["status"] == BREACH, wait
    assert wait["total"] == count and wait["good"] < count
    assert report["config"]["queue_wait_target_s"] is None  # each class's own target
    assert "1s for fast agents, 10s for model agents" in wait["detail"]
    assert verdict(report, "task-success")["status"] == PASS
    assert report["latency_ms"]["queue_wait"]["max_ms"] > target_s * 1000


# --- (c) reports --------------------------------------------------------------------------------


@pytest.mark.integration
def test_report_files(env: Env, api_url: str, api_key: str, worker: Proc,
                      tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, report, stderr = run_cli(env, api_url, api_key, "--rate", "40", "--requests", "40",
                                   "--mix", "echo=0.75,summarize=0.25", "--payload-bytes", "256",
                                   "--report-dir", str(out))
    assert code == EXIT_OK, stderr
    saved = json.loads((out / "report.json").read_text())
    assert saved["requests"]["sent"] == 40
    assert {"histograms", "series", "verdicts", "latency_ms"} <= set(saved)
    assert saved["by_agent"]["echo"]["sent"] == 30 and saved["by_agent"]["summarize"]["sent"] == 10
    assert saved["by_agent"]["summarize"]["succeeded"] == 10
    page = (out / "report.md").read_text()
    assert "## SLO verdicts" in page and "| task-success |" in page
    for name in ("throughput.png", "latency_over_time.png", "latency_distribution.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, name
        assert f"]({name})" in page
    assert report["requests"] == saved["requests"]


# --- the generator against a fake API: open model, no coordinated omission ------------------------


class FakeApi:
    """An HTTP/1.1 server on asyncio that accepts tasks after ``delay_s`` (202) and reports them
    final at once."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.posts = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                method, path = line.decode().split()[:2]
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.partition(b":")
                    length = int(value) if name.lower() == b"content-length" else length
                await reader.readexactly(length)
                if method == "POST":
                    self.posts += 1
                    await asyncio.sleep(self.delay_s)
                    status, body = 202, {"id": f"t{self.posts}", "status": "queued"}
                else:
                    at = "2026-01-01T00:00:00+00:00"
                    status, body = 200, {"id": path.rsplit("/", 1)[-1], "status": "succeeded",
                                         "created_at": at, "started_at": at, "finished_at": at}
                data = json.dumps(body).encode()
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(data)}\r\n\r\n"
                             .encode() + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def fake_config(url: str, rate: float, requests: int, max_connections: int) -> LoadConfig:
    return LoadConfig(url=url, api_key="k", profile=Constant(rate),
                      workload=Workload({"echo": 1.0}), queue_wait_target_s=QUEUE_WAIT_TARGET_S,
                      duration_s=None, max_requests=requests, max_connections=max_connections,
                      request_timeout_s=5, drain_timeout_s=5, progress=False)


@pytest.mark.unit
async def test_latency_counts_from_the_intended_send_time() -> None:
    """One connection, answers of 100 ms, requests due every 50 ms: each request waits for the
    connection, and that wait is latency (a closed-model client would report a flat 100 ms)."""
    async with FakeApi(delay_s=0.1) as url:
        result = await run_load(fake_config(url, rate=20, requests=20, max_connections=1))
    stats = result.stats
    assert stats.sent == 20 and stats.accepted == 20 and stats.tasks["succeeded"] == 20
    assert result.pool_peak == 1 and result.pool_waits > 0
    # the k-th answer comes at ~0.1 (k + 1) s, it was due at 0.05 k s: the last one ~1.05 s late
    assert stats.submit.maximum > 0.9, stats.submit.summary()
    assert stats.submit.minimum < 0.2
    assert stats.achieved_rate() == pytest.approx(20, rel=0.05)  # sent on schedule regardless


@pytest.mark.unit
async def test_the_pool_grows_so_slow_answers_do_not_delay_sends() -> None:
    config = fake_config(url="", rate=50, requests=50, max_connections=64)
    config.track_fraction = 0.2  # follow every fifth task only
    async with FakeApi(delay_s=0.1) as url:
        config.url = url
        result = await run_load(config)
    assert result.pool_waits == 0 and 4 <= result.pool_peak <= 12
    assert result.stats.accepted == 50 and result.stats.tracked == 10
    assert result.stats.tasks["succeeded"] == 10 and result.polls == 10
    # no request waited for a connection (above): each answer took the server's 100 ms, and the
    # sends kept to their schedule; how much longer a busy machine made some answers is noise
    assert result.stats.submit.minimum >= 0.095, result.stats.submit.summary()
    assert result.stats.achieved_rate() == pytest.approx(50, rel=0.05)


@pytest.mark.unit
async def test_unreachable_api_counts_connection_errors_and_breaches_availability() -> None:
    config = fake_config("http://127.0.0.1:9", rate=50, requests=10, max_connections=4)
    result = await run_load(config)
    assert result.stats.errors["connection"] == 10
    found = {v.slo: v for v in verdicts(result.stats)}
    assert found["api-availability"].status == BREACH
    assert found["task-success"].status == NO_DATA
    assert exit_code(list(found.values())) == EXIT_BREACH


# --- (d) unit: histogram ------------------------------------------------------------------------


def exact_percentile(ordered: list[float], q: float) -> float:
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.unit
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_histogram_percentiles_within_one_percent(seed: int) -> None:
    rng = random.Random(seed)
    # a long-tailed mix: most answers in milliseconds, a tail out to tens of seconds
    samples = [rng.lognormvariate(math.log(0.004), 0.6) for _ in range(50_000)]
    samples += [rng.uniform(0.5, 40.0) for _ in range(200)]
    hist = Histogram()
    for value in samples:
        hist.record(value)
    ordered = sorted(samples)
    for q in (0.5, 0.75, 0.9, 0.99, 0.995, 0.999, 0.9999):
        got, want = hist.percentile(q), exact_percentile(ordered, q)
        assert got is not None
        assert abs(got - want) / want <= 0.01, (q, got, want)
        assert abs(got - want) / want <= MAX_RELATIVE_ERROR + 1e-12
    assert hist.percentile(1.0) == max(samples) and hist.percentile(0.0) == min(samples)
    assert hist.count == len(samples) and hist.mean == pytest.approx(sum(samples) / len(samples))


@pytest.mark.unit
def test_histogram_buckets_hold_their_values() -> None:
    for value in (1e-6, 3.3e-6, 0.001, 0.0123, 0.5, 1.0, 7.77, 1234.5):
        low, high = bucket_bounds(bucket_index(value))
        assert low <= value < high and (high - low) / low <= 1 / 128 + 1e-12
    assert bucket_index(0.0) == bucket_index(1e-9)  # below the unit: the first bucket


@pytest.mark.unit
def test_histogram_merge_and_json_round_trip() -> None:
    a, b, both = Histogram(), Histogram(), Histogram()
    for i in range(1, 1000):
        (a if i % 2 else b).record(i / 1000)
        both.record(i / 1000)
    a.merge(b)
    assert a.counts == both.counts and a.count == both.count
    again = Histogram.from_json(json.loads(json.dumps(a.to_json())))
    assert again.percentile(0.999) == a.percentile(0.999) and again.maximum == a.maximum
    assert Histogram().percentile(0.5) is None and Histogram().summary()["p99_ms"] is None


# --- (d) unit: schedules ------------------------------------------------------------------------


@pytest.mark.unit
def test_constant_schedule() -> None:
    times = list(schedule(Constant(50), duration_s=None, max_requests=200))
    assert len(times) == 200
    assert times[:3] == [0.0, 0.02, 0.04] and times[-1] == pytest.approx(199 / 50)
    assert expected_requests(Constant(50), 2.0, None) == 100  # t < duration
    assert expected_requests(Constant(50), 2.0, 30) == 30  # whichever bound comes first
    with pytest.raises(ValueError, match="bound"):
        next(schedule(Constant(1), None, None))


@pytest.mark.unit
def test_ramp_schedule() -> None:
    ramp = Ramp(0, 100, 10)  # arrivals by t: 5 t^2
    times = list(schedule(ramp, 10, None))
    assert len(times) == 500  # the area under the ramp
    for k in (1, 20, 125, 499):
        assert times[k] == pytest.approx(math.sqrt(k / 5))
    assert sum(1 for t in times if t < 1) == 5 and sum(1 for t in times if t >= 9) == 95
    assert all(b > a for a, b in itertools.pairwise(times))
    up = Ramp(10, 30, 4)  # 80 in 4 s, then 30/s
    assert expected_requests(up, 4, None) == 80
    assert up.time_of(80) == pytest.approx(4.0) and up.time_of(83) == pytest.approx(4.1)
    flat = Ramp(20, 20, 5)
    assert list(schedule(flat, 1, None)) == pytest.approx([k / 20 for k in range(20)])


@pytest.mark.unit
def test_step_schedule() -> None:
    steps = Steps(10, 10, 2)  # 10/s for 2 s, 20/s for 2 s, 30/s ...
    times = list(schedule(steps, 6, None))
    assert len(times) == 20 + 40 + 60
    assert times[19] == pytest.approx(1.9) and times[20] == pytest.approx(2.0)
    assert times[21] == pytest.approx(2.05) and times[60] == pytest.approx(4.0)
    assert [steps.rate_at(t) for t in (0, 1.99, 2, 5.5)] == [10, 10, 20, 30]
    capped = Steps(10, 10, 1, maximum=15)
    assert [capped.rate_at(t) for t in (0, 1, 2, 9)] == [10, 15, 15, 15]
    down = Steps(20, -10, 1)  # 20/s, 10/s, then nothing more
    assert list(schedule(down, 100, None)) == pytest.approx(
        [k / 20 for k in range(20)] + [1 + k / 10 for k in range(10)])


# --- unit: workload, verdicts, search, Prometheus -----------------------------------------------


@pytest.mark.unit
def test_mix_is_exact_and_inputs_are_padded() -> None:
    assert parse_mix("echo=0.8,summarize=0.2") == {"echo": 0.8, "summarize": 0.2}
    assert parse_mix("echo") == {"echo": 1.0}
    with pytest.raises(ValueError):
        parse_mix("echo=x")
    work = Workload(parse_mix("echo=0.8,summarize=0.2"), payload_bytes=256,
                    inputs={"echo": {"hello": 1}}, max_attempts=1)
    bodies = [json.loads(work.body(i)[1]) for i in range(100)]
    assert sum(b["agent"] == "echo" for b in bodies) == 80
    assert all(b["agent"] in ("echo", "summarize") for b in bodies[:5])
    echo = next(b for b in bodies if b["agent"] == "echo")
    assert echo["input"]["hello"] == 1 and len(echo["input"]["pad"]) == 256
    assert echo["max_attempts"] == 1
    summarize = next(b for b in bodies if b["agent"] == "summarize")
    assert len(summarize["input"]["text"]) >= 256 and summarize["input"]["sentences"] == 2


@pytest.mark.unit
def test_verdicts_come_from_the_slo_objects() -> None:
    stats = RunStats(QUEUE_WAIT_TARGET_S)
    for _ in range(1000):
        stats.record_send("echo", 0.0, 0.0)
        stats.record_answer("echo", 0.0, 0.01, 202)
    at = "2026-01-01T00:00:00+00:00"
    for i in range(1000):
        started = f"2026-01-01T00:00:{5 if i else 15:02d}+00:00"  # one waits 15 s
        stats.record_final("echo", 0.0, 0.0, {"status": "succeeded" if i else "dead",
                                               "created_at": at, "started_at": started,
                                               "finished_at": started})
    found = {v.slo: v for v in verdicts(stats)}
    assert set(found) == {slo.name for slo in SLOS}
    assert all(v.objective == slo.objective for slo in SLOS for v in [found[slo.name]])
    assert found["task-success"].good == 999 and found["task-success"].status == PASS  # 99.9%
    assert found["queue-wait"].good == 999 and found["queue-wait"].status == PASS
    stats.record_answer("echo", 0.0, 0.01, 503)
    stats.record_answer("echo", 0.0, 0.01, 503)
    assert {v.slo: v for v in verdicts(stats)}["api-availability"].status == BREACH
    assert exit_code(verdicts(stats)) == EXIT_BREACH
    drill = RunStats(queue_wait_target_s=1.0)
    drill.record_final("echo", 0.0, 0.0, {"status": "succeeded", "created_at": at,
                                          "started_at": "2026-01-01T00:00:02+00:00",
                                          "finished_at": "2026-01-01T00:00:02+00:00"})
    wait = {v.slo: v for v in verdicts(drill)}["queue-wait"]
    assert wait.status == BREACH and "drill override" in wait.detail
    drill.record_unfinished("echo", started=False, waited_s=2.0)  # never started, already too late
    assert {v.slo: v for v in verdicts(drill)}["queue-wait"].total == 2


@pytest.mark.unit
def test_queue_wait_is_judged_by_the_agent_types_class() -> None:
    """5 s of waiting is late for a no-op agent and on time for a model call."""
    stats = RunStats()
    for agent in ("echo", "llm"):
        stats.record_final(agent, 0.0, 0.0, {
            "status": "succeeded", "created_at": "2026-01-01T00:00:00+00:00",
            "started_at": "2026-01-01T00:00:05+00:00",
            "finished_at": "2026-01-01T00:00:06+00:00"})
    stats.record_unfinished("echo", started=False, waited_s=2.0)  # late already
    stats.record_unfinished("llm", started=False, waited_s=2.0)  # not yet
    assert (stats.queue_wait_good, stats.queue_wait_total) == (1, 3)
    assert RunStats(queue_wait_target_s=30.0).wait_target_s("echo") == 30.0  # a drill's


@pytest.mark.unit
def test_the_queue_wait_is_split_into_outbox_and_queue() -> None:
    stats = RunStats(QUEUE_WAIT_TARGET_S)
    for second, published in ((0, "00.200"), (1, "01.050")):
        stats.record_final("echo", float(second), 0.0, {
            "status": "succeeded", "created_at": f"2026-01-01T00:00:0{second}.000+00:00",
            "published_at": f"2026-01-01T00:00:{published}+00:00",
            "started_at": f"2026-01-01T00:00:0{second}.500+00:00",
            "finished_at": f"2026-01-01T00:00:0{second}.600+00:00"})
    assert stats.outbox_wait.maximum == pytest.approx(0.2, rel=0.01)
    assert stats.outbox_wait.minimum == pytest.approx(0.05, rel=0.01)
    assert stats.broker_wait.maximum == pytest.approx(0.45, rel=0.01)
    assert stats.queue_wait.count == 2 and stats.queue_wait.maximum == pytest.approx(0.5, rel=0.01)
    rows = series_rows(stats)
    half_second = pytest.approx(500, rel=MAX_RELATIVE_ERROR)
    assert [row["queue_wait_p99_ms"] for row in rows] == [half_second, half_second]


def synthetic_result(rate: float, stage_s: float, capacity: float) -> RunResult:
    """A stage of ``stage_s`` at ``rate`` against a pipeline finishing ``capacity`` per second."""
    stats = RunStats(QUEUE_WAIT_TARGET_S)
    count = int(rate * stage_s)
    at = "2026-01-01T00:00:00+00:00"
    for k in range(count):
        t = k / rate
        stats.record_send("echo", t, t)
        stats.record_answer("echo", t, t + 0.002, 202)
        stats.tracked += 1
        done = max(t, k / capacity) + 0.01
        stats.record_final("echo", t, 0.0, {"status": "succeeded", "created_at": at,
                                            "started_at": at,
                                            "finished_at": f"2026-01-01T00:00:{done - t:09.6f}"
                                                           "+00:00"})
    config = fake_config("http://x", rate, count, 1)
    return RunResult(config, stats, 0.0, stage_s, stage_s, 1, 1, 0, count, 0)


@pytest.mark.unit
async def test_find_max_stops_at_the_first_stage_that_does_not_keep_up() -> None:
    seen: list[float] = []

    async def runner(config: LoadConfig) -> RunResult:
        rate = config.profile.rate_at(0)
        seen.append(rate)
        return synthetic_result(rate, config.duration_s or 0, capacity=33)

    base = fake_config("http://x", 1, 1, 1)
    found = await find_max(base, SearchConfig(start=10, step=10, stage_s=10), runner)
    assert seen == [10, 20, 30, 40]
    assert found.max_rate_held == 30
    assert "fell behind" in found.stages[-1].reason and found.stages[0].reason == "held"


class FakePrometheus(BaseHTTPRequestHandler):
    queries: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        params = parse_qs(urlsplit(self.path).query)
        query = params["query"][0]
        FakePrometheus.queries.append((query, params["time"][0]))
        if "slo_error_ratio" in query:
            value: str | None = "0.25"
        elif '"5.."' in query or "queue_wait" in query:
            value = None  # no series: no 5xx was ever counted; no queue-wait data at all
        elif "dead_lettered" in query and "succeeded" not in query:
            value = "1.5"
        else:
            value = "3"
        result = [] if value is None else [{"metric": {}, "value": [0, value]}]
        body = json.dumps({"status": "success", "data": {"resultType": "vector",
                                                        "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.unit
def test_server_view_queries_the_slo_expressions_over_the_run_window() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        views = {v.slo: v for v in prometheus.server_view(url, 1000.0, 1042.4)}
    finally:
        server.shutdown()
    assert set(views) == {slo.name for slo in SLOS}
    available = views["api-availability"]
    assert available.window_s == 43 and available.errors_rate is None
    assert available.status == PASS and available.note and available.events == 3 * 43
    assert views["task-success"].good_ratio == 0.5 and views["task-success"].status == BREACH
    assert views["task-success"].record == ratio_record("5m")
    assert views["task-success"].record_error_ratio == 0.25
    assert views["queue-wait"].status == NO_DATA and views["queue-wait"].note is None
    window_queries = [q for q, _ in FakePrometheus.queries if "[43s]" in q]
    assert len(window_queries) == 2 * len(SLOS) and all("{window}" not in q
                                                        for q in window_queries)
    assert set(window_queries) == {q for slo in SLOS
                                   for q in prometheus.window_queries(slo, 43)}
    assert all(at == "1042.400" for _, at in FakePrometheus.queries)
    assert prometheus.closest_record_window(20 * 60) == "30m"
    assert prometheus.closest_record_window(60) == "5m"


@pytest.mark.integration
def test_without_a_key_the_load_runs_on_a_key_of_its_own_with_limits_above_it(
        own_env: Env) -> None:
    """With only the development key (an admin key) at hand, the load generator makes a key of
    its own through /v1/admin/keys, far above its load, and revokes it at the end."""
    env = own_env
    api_url = start_api(env)
    start_agent(env, "--agents", "echo")
    dev_key = Path(env.environ["ORCH_STATE_DIR"]) / "dev-api-key"
    dev_key.parent.mkdir(parents=True, exist_ok=True)
    dev_key.write_text(create_key(env, None, "admin", tenant="ops") + "\n")
    environ = {k: v for k, v in {**os.environ, **env.environ}.items() if k != "ORCH_API_KEY"}
    out = subprocess.run([*ORCHESTRATOR, "loadtest", "--quiet", "--json", "--rate", "20",
                          "--requests", "20", "--mix", "echo"],
                         env={**environ, "ORCH_API_URL": api_url},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == EXIT_OK, out.stderr
    listed = subprocess.run([*ORCHESTRATOR, "keys", "list", "--all", "--json"], env=environ,
                            capture_output=True, text=True, timeout=60)
    made = [k for k in json.loads(listed.stdout) if k["name"].startswith("loadtest-")]
    assert made and all(k["revoked_at"] and k["rate_limit"] == "100000/s" for k in made), made


@pytest.mark.unit
def test_the_soak_folds_seconds_into_minutes_by_the_worst_queue_wait() -> None:
    from loadtest.soak import per_minute

    series = [{"second": s, "completed": 10, "queue_wait_p99_ms": float(s)} for s in range(130)]
    series[70]["queue_wait_p99_ms"] = None  # a second without a tracked task
    assert per_minute(series) == [
        {"minute": 0, "completed": 600, "queue_wait_p99_ms": 59.0},
        {"minute": 1, "completed": 600, "queue_wait_p99_ms": 119.0},
        {"minute": 2, "completed": 100, "queue_wait_p99_ms": 129.0}]
