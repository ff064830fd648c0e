"""``orchestrator loadtest``: open-model load against the API, with SLO verdicts as exit code.

    orchestrator loadtest --rate 50 --requests 200
    orchestrator loadtest --rate 10 --ramp-to 200 --duration 60 --mix echo=0.8,summarize=0.2
    orchestrator loadtest --rate 20 --step 20 --step-every 10 --duration 60 --report-dir out
    orchestrator loadtest --find-max --rate 50 --find-step 50 --stage-duration 20
    orchestrator loadtest --rate 50 --duration 120 --prometheus http://127.0.0.1:9090
    orchestrator loadtest --rate 400 --duration 30 --track 0.1   # poll a tenth of the tasks

Exit code: 0 when every SLO held, 1 on a breach (a capacity search: when no rate held),
2 on bad arguments, 3 when an SLO had no data to judge.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.settings import Settings

if TYPE_CHECKING:
    from loadtest.findmax import Stage
    from loadtest.generator import LoadConfig

EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``loadtest`` options (kept here so the CLI module only wires them in)."""
    target = parser.add_argument_group("target")
    target.add_argument("--url", help="the API (default: ORCH_API_URL, else ORCH_API_HOST/PORT)")
    target.add_argument("--api-key", help="bearer key (default: ORCH_API_KEY)")
    load = parser.add_argument_group("load profile (open model: sent on schedule, latency from"
                                     " the intended send time)")
    load.add_argument("--rate", type=float, default=10.0,
                      help="requests per second (the start rate of a ramp or steps)")
    load.add_argument("--ramp-to", type=float, metavar="RATE",
                      help="ramp linearly from --rate to RATE over --duration")
    load.add_argument("--step", type=float, metavar="RATE",
                      help="add RATE per second every --step-every seconds")
    load.add_argument("--step-every", type=float, default=10.0, metavar="S",
                      help="seconds between steps of the step profile")
    load.add_argument("--step-max", type=float, metavar="RATE", help="cap of the step profile")
    load.add_argument("--duration", type=float, metavar="S",
                      help="stop sending after S seconds (default 10 when --requests is not"
                           " given either)")
    load.add_argument("--requests", type=int, metavar="N", help="stop after N requests")
    work = parser.add_argument_group("workload")
    work.add_argument("--mix", default="echo", help="agents and weights, e.g. echo=0.8,"
                                                     "summarize=0.2")
    work.add_argument("--payload-bytes", type=int, default=0,
                      help="pad each input with a string of this size (summarize: text size)")
    work.add_argument("--input", action="append", default=[], metavar="AGENT=JSON",
                      help="the input for an agent, e.g. sleep='{\"seconds\": 0.5}'")
    work.add_argument("--max-attempts", type=int, help="tasks' max_attempts")
    work.add_argument("--task-timeout", type=float, metavar="S", help="tasks' timeout_s")
    client = parser.add_argument_group("client")
    client.add_argument("--max-connections", type=int, default=256,
                        help="bound of the keep-alive connection pool")
    client.add_argument("--request-timeout", type=float, default=10.0, metavar="S",
                        help="seconds one HTTP request may take")
    client.add_argument("--drain-timeout", type=float, default=60.0, metavar="S",
                        help="how long to wait for accepted tasks to finish after sending")
    client.add_argument("--pollers", type=int, default=8,
                        help="concurrent task-status pollers")
    client.add_argument("--track", type=float, default=1.0, metavar="FRACTION",
                        help="follow this share of the tasks to their end (each costs the API"
                             " status polls); task SLOs are then judged on that sample")
    client.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    out = parser.add_argument_group("verdicts and reports")
    out.add_argument("--report-dir", type=Path, metavar="DIR",
                     help="write report.json, report.md and PNG plots here")
    out.add_argument("--prometheus", metavar="URL",
                     help="also show the server's view of the SLOs over the run window")
    out.add_argument("--prometheus-settle", type=float, default=10.0, metavar="S",
                     help="wait this long after the run for the last scrapes")
    out.add_argument("--drill-queue-wait-target", type=float, metavar="S",
                     help="DRILLS ONLY: judge queue wait against S seconds, overriding"
                          " the class targets of the queue-wait SLO object")
    search = parser.add_argument_group("capacity search (--find-max)")
    search.add_argument("--find-max", action="store_true",
                        help="step the rate up from --rate until an SLO breaks")
    search.add_argument("--find-step", type=float, metavar="RATE",
                        help="rate added per stage (default: --rate)")
    search.add_argument("--stage-duration", type=float, default=30.0, metavar="S",
                        help="seconds each rate of the search is held")
    search.add_argument("--find-limit", type=float, default=10_000.0, metavar="RATE",
                        help="stop searching above this rate")
    search.add_argument("--keep-up", type=float, default=0.95, metavar="RATIO",
                        help="share of a stage's tasks that must be final shortly after it"
                             " (0: judge on SLOs only)")


def _inputs(entries: list[str]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for entry in entries:
        agent, sep, raw = entry.partition("=")
        if not sep:
            raise ValueError(f"--input {entry!r}: expected AGENT=JSON")
        try:
            inputs[agent.strip()] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--input {entry!r}: not JSON: {exc}") from None
    return inputs


def build_config(args: argparse.Namespace, settings: Settings) -> LoadConfig:
    """A :class:`loadtest.generator.LoadConfig` from the options; ValueError when they do not
    fit together."""
    from loadtest.generator import LoadConfig
    from loadtest.profiles import Constant, Profile, Ramp, Steps
    from loadtest.workload import Workload, parse_mix

    duration = args.duration
    if duration is None and args.requests is None:
        duration = 10.0
    if args.ramp_to is not None and args.step is not None:
        raise ValueError("choose one of --ramp-to and --step")
    if args.requests is not None and args.requests < 1:
        raise ValueError("--requests must be at least 1")
    profile: Profile
    if args.ramp_to is not None:
        if duration is None:
            raise ValueError("a ramp needs --duration")
        profile = Ramp(args.rate, args.ramp_to, duration)
    elif args.step is not None:
        profile = Steps(args.rate, args.step, args.step_every, args.step_max)
    else:
        profile = Constant(args.rate)
    workload = Workload(parse_mix(args.mix), payload_bytes=args.payload_bytes,
                        inputs=_inputs(args.input), max_attempts=args.max_attempts,
                        timeout_s=args.task_timeout)
    target = args.drill_queue_wait_target  # None: each agent type's class target
    if args.max_connections < 1 or args.pollers < 1:
        raise ValueError("--max-connections and --pollers must be at least 1")
    if not 0 < args.track <= 1:
        raise ValueError("--track must be above 0 and at most 1")
    return LoadConfig(url=(args.url or settings.api.base_url).rstrip("/"),
                      api_key=args.api_key if args.api_key is not None else settings.api.key,
                      profile=profile, workload=workload, queue_wait_target_s=target,
                      duration_s=duration, max_requests=args.requests,
                      max_connections=args.max_connections,
                      request_timeout_s=args.request_timeout,
                      drain_timeout_s=args.drain_timeout, pollers=args.pollers,
                      track_fraction=args.track,
                      progress=not args.quiet)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the load test (or the capacity search) the options describe; the exit code."""
    from loadtest.capacity import record_capacity
    from loadtest.findmax import SearchConfig, find_max
    from loadtest.generator import run_load
    from loadtest.keys import load_key
    from loadtest.prometheus import server_view
    from loadtest.report import build_report, write_report
    from loadtest.summary import print_summary
    from loadtest.verdicts import EXIT_BREACH, EXIT_OK, verdicts

    try:
        config = build_config(args, settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    search_result = None
    with load_key(config.url, config.api_key, settings.operator_key) as key, \
            asyncio.Runner(loop_factory=_loop_factory()) as runner:
        config = dataclasses.replace(config, api_key=key)
        if args.find_max:
            search = SearchConfig(start=args.rate, step=args.find_step or args.rate,
                                  stage_s=args.stage_duration, max_rate=args.find_limit,
                                  keep_up=args.keep_up)

            def announce(stage: Stage) -> None:
                if not args.quiet:
                    print(f"stage {stage.rate:g}/s: {stage.reason}", file=sys.stderr)

            search_result = runner.run(find_max(config, search, on_stage=announce))
            result = search_result.stages[-1].result
            started = search_result.stages[0].result.started_wall
        else:
            result = runner.run(run_load(config))
            started = result.started_wall
    found = verdicts(result.stats)
    server = None
    if args.prometheus:
        time.sleep(args.prometheus_settle)
        server = server_view(args.prometheus, started, time.time())
    report = build_report(result, found, server, search_result)
    if search_result is not None:
        report["exit_code"] = EXIT_OK if search_result.max_rate_held is not None else EXIT_BREACH
        if search_result.max_rate_held is not None:
            record_capacity(settings.state_dir, search_result.max_rate_held,
                            search_result.config.stage_s, config.url)
    if args.report_dir:
        paths = write_report(args.report_dir, report)
        if not args.quiet:
            print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "histograms"}, indent=2))
    else:
        print_summary(report)
    return int(report["exit_code"])
