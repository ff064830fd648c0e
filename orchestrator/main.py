"""``orchestrator``: run the processes and operate the system from a terminal."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtest import cli as loadtest_cli
from orchestrator import backup as backup_cmd
from orchestrator import client as cmd
from orchestrator import dlq as dlq_cmd
from orchestrator import keys as keys_cmd
from orchestrator import processes
from orchestrator import purge as purge_cmd
from orchestrator import schedule as schedule_cmd
from service.domain import TaskStatus
from service.errors import MissingExtra
from service.settings import CHECKOUT_ROOT, Settings, SettingsError, unknown_variables


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestrator", description=__doc__)
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.metadata.version('agent-orchestrator')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run API, agents and outbox relay on local defaults")
    up.add_argument("--agent-processes", type=int, default=1,
                    help="agent worker processes to start (default 1)")
    api = sub.add_parser("api", help="run the HTTP API (with its outbox relay)")
    api.add_argument("--port", type=int, help="the port to listen on (default ORCH_API_PORT)")
    api.add_argument("--workers", type=int, help="server worker processes")
    agent = sub.add_parser("agent", help="run an agent worker process")
    agent.add_argument("--agents", help="comma-separated agent types (default: all)")
    agent.add_argument("--concurrency", metavar="N[,AGENT=N]",
                       help="tasks of one agent type run at once, a default and per-type"
                            " numbers (default ORCH_CONCURRENCY)")
    agent.add_argument("--metrics-port", type=int, help="port of this agent's /metrics (0: any)")
    for runner in (up, api, agent):
        runner.add_argument("--log-format", choices=("json", "human"),
                            help="log lines as JSON (default) or for people")
    stack = sub.add_parser("stack", help="the orchestrator with Prometheus, Alertmanager and a"
                                         " page inbox, natively (no Docker)")
    stack_sub = stack.add_subparsers(dest="stack_command", required=True, metavar="ACTION")
    stack_up = stack_sub.add_parser("up", help="start everything; Ctrl-C stops everything")
    stack_up.add_argument("--agent-processes", type=int, default=1,
                          help="agent worker processes to start (default 1)")
    stack_up.add_argument("--log-format", choices=("json", "human"),
                          help="log lines as JSON (default) or for people")
    for action, text in (("down", "stop what `stack up` started"),
                         ("status", "the stack's processes"),
                         ("pages", "pages the inbox received (PagerDuty Events API v2)")):
        stack_sub.add_parser(action, help=text).add_argument(
            "--json", action="store_true", help="machine-readable output")
    sub.add_parser("doctor", help="walk the troubleshooting trees over the live"
                   " system: all clear (exit 0) or findings with runbook links (exit 1)")
    drill = sub.add_parser("drill", help="inject each incident's real fault on a stack of its"
                           " own and check the page, the doctor and the resolve")
    drill_sub = drill.add_subparsers(dest="drill_command", required=True, metavar="ACTION")
    drill_list = drill_sub.add_parser("list", help="the drills, one per incident scenario")
    drill_run = drill_sub.add_parser("run", help="run drills (exit 1 when one fails)")
    for child in (drill_list, drill_run):  # after the action too; SUPPRESS keeps a --json
        child.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                           help="machine-readable output")  # given before it
    drill_run.add_argument("names", nargs="*", metavar="NAME",
                           help="drills to run (orchestrator drill list names them)")
    drill_run.add_argument("--all", action="store_true", help="every drill")
    drill_run.add_argument("--parallel", type=int, default=1,
                           help="drill stacks to run side by side (default 1)")
    sub.add_parser("migrate", help="apply database migrations")
    render = sub.add_parser("render", help="regenerate rules, Alertmanager config, runbook,"
                                               " dashboards, Kubernetes manifests")
    render.add_argument("--root", type=Path, default=CHECKOUT_ROOT,
                        help="the project checkout to write into (default: this one)")
    render.add_argument("--kubernetes", type=Path, metavar="DIR",
                        help="instead, write the Kubernetes manifests (base and overlays) for"
                             " this environment's ORCH_ settings into DIR: alert links follow"
                             " ORCH_PUBLIC_URL and ORCH_GRAFANA_URL, the ConfigMap every value")

    keys_cmd.add_arguments(sub.add_parser("keys", help="API keys: create, list, revoke,"
                                                       " rotate"))
    purge_cmd.add_arguments(sub.add_parser(
        "purge", help="delete finished tasks older than an age, in batches (retention by hand)"))
    backup_cmd.add_arguments(sub.add_parser("backup", help="dump, verify, restore the database"))
    report = sub.add_parser("report", help="the shift report: pages, SLO budgets, throughput,"
                                           " slowest agents, dead letters, headroom (admin key)")
    report.add_argument("--since", default="12h", metavar="AGE",
                        help="the window, e.g. 12h (a shift), 7d (a week; default 12h)")
    dlq_cmd.add_arguments(sub.add_parser("dlq", help="dead letters: list, show, replay, purge"
                                                     " (admin key)"))
    schedule_cmd.add_arguments(sub.add_parser(
        "schedule", help="recurring schedules: create, list, show, pause, resume, delete"))

    submit = sub.add_parser("submit", help="submit a task")
    submit.add_argument("agent", help="the agent type (orchestrator agents lists them)")
    submit.add_argument("input", help="task input as JSON, e.g. '{\"text\": \"...\"}'")
    submit.add_argument("--wait", action="store_true",
                        help="wait until the task finishes, telling each status change (exit 0:"
                             " succeeded, 1: dead or cancelled, 3: still unfinished)")
    submit.add_argument("--follow", action="store_true",
                        help="wait, printing the task's stream as it comes: its output on"
                             " stdout, progress and transitions on stderr (implies --wait)")
    submit.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to --wait or --follow")
    submit.add_argument("--idempotency-key",
                        help="the same key and input return the first task, not a new one")
    submit.add_argument("--max-attempts", type=int, help="attempts before the task is dead")
    submit.add_argument("--priority", type=int, choices=range(10), metavar="0-9",
                        help="the task's priority (above 5 needs the tasks:priority scope)")
    submit.add_argument("--timeout-s", type=float, dest="task_timeout_s",
                        help="seconds one attempt may run before it is stopped")
    submit.add_argument("--callback-url", metavar="URL",
                        help="POST the final task here when it ends, signed (see orchestrator"
                             " callbacks secret)")
    submit.add_argument("--concurrency-key", metavar="KEY",
                        help="tasks with the same key share the agent's max_concurrency_per_key")
    submit.add_argument("--run-at", metavar="TIME",
                        help="start it no earlier than this ISO 8601 time with an offset"
                             " (2026-12-03T18:00:00Z); it is stored now")
    submit.add_argument("--delay", type=float, metavar="SECONDS", dest="delay_s",
                        help="start it no earlier than this many seconds from now")
    for name, help_text in (("status", "show one task"), ("events", "a task's timeline"),
                            ("follow", "print a task's stream live (output, progress,"
                                       " transitions) until it ends"),
                            ("cancel", "cancel a task (a running one gets a cancel request)"),
                            ("retry", "requeue a dead task")):
        one = sub.add_parser(name, help=help_text)
        one.add_argument("task_id", help="the task's id, or a unique start of it (4+ hex digits)")
        if name == "events":
            one.add_argument("--absolute", action="store_true",
                             help="UTC times instead of the time since the first event")
        if name == "follow":
            one.add_argument("--timeout", type=float, default=600.0,
                             help="seconds to follow (default 600)")
    callbacks = sub.add_parser("callbacks", help="completion callbacks: the signing secret")
    callbacks.add_argument("what", choices=["secret"],
                           help="secret: the one this key's tenant's callbacks are signed with")
    callbacks.add_argument("--rotate", action="store_true",
                           help="make a new one (the previous one signs too for a day)")
    listing = sub.add_parser("tasks", help="list tasks, newest first")
    listing.add_argument("--status", choices=[s.value for s in TaskStatus],
                         help="only tasks in this status")
    listing.add_argument("--agent", help="only tasks of this agent type")
    listing.add_argument("--limit", type=int, default=20, help="tasks per page (1-500)")
    listing.add_argument("--cursor", help="the page after this point (printed under a page)")
    listing.add_argument("--all", action="store_true", dest="every_page",
                         help="every page, not only the first")
    listing.add_argument("--stuck", action="store_true",
                         help="only tasks running past their timeout, or due and waiting"
                              " longer than ORCH_STUCK_QUEUED_S (60 s)")
    stats = sub.add_parser("stats", help="the system at a glance: tasks by status per agent,"
                           " queues, outbox, throughput and failure ratio (admin key)")
    stats.add_argument("--watch", action="store_true", help="redraw every 2 s until Ctrl-C")
    completion = sub.add_parser("completion", help="a shell completion script: add"
                                " 'source <(orchestrator completion bash)' to ~/.bashrc")
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete in")
    agents = sub.add_parser("agents", help="agent types and live workers")
    agents_sub = agents.add_subparsers(dest="agents_command", metavar="ACTION")
    retire = agents_sub.add_parser("retire", help="stop expecting a worker for an agent type"
                                                  " taken out of service (no more pages)")
    retire.add_argument("name", help="the agent type")
    loadtest_cli.add_arguments(sub.add_parser(
        "loadtest", help="open-model load test with SLO verdicts (exit code 1 on a breach)"))
    for p in sub.choices.values():
        p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in unknown_variables(settings):
        print(f"warning: {line}", file=sys.stderr)
    try:
        return _dispatch(args, settings)
    except cmd.ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except MissingExtra as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


_SERVING = {"up", "api", "agent", "stack"}
"""Commands whose processes configure their own logging."""


def _dispatch(args: argparse.Namespace, s: Settings) -> int:
    c = args.command
    if getattr(args, "log_format", None):
        s = s.with_overrides(log_format=args.log_format)
    if c not in _SERVING:  # warnings of the libraries a command uses: scrubbed, on stderr
        from service.telemetry.logs import configure_logging

        configure_logging(s.with_overrides(log_format="human", log_level="WARNING",
                                           log_file="").telemetry, service="cli")
    if c == "up":
        return processes.run_up(s, args.agent_processes)
    if c == "api":
        s = s.with_overrides(api_port=args.port or s.api.port,
                             api_workers=args.workers or s.api.workers)
        return processes.run_api(s)
    if c == "agent":
        s = s.with_overrides(concurrency=args.concurrency or s.worker.concurrency,
                             agent_metrics_port=s.worker.metrics_port if args.metrics_port is None
                             else args.metrics_port)
        agents = args.agents.split(",") if args.agents else None
        return processes.run_agent(s, agents)
    if c == "stack":
        from orchestrator import stack as stack_cmd

        if args.stack_command == "up":
            return processes.run_up(s, args.agent_processes, with_stack=True)
        if args.stack_command == "down":
            return stack_cmd.down(s)
        if args.stack_command == "status":
            return stack_cmd.status(s, args.json)
        return stack_cmd.pages(s, args.json)
    if c == "completion":
        from orchestrator.completion import script

        print(script(build_parser(), args.shell))
        return 0
    if c == "render":
        from orchestrator.render import render_all, render_kubernetes

        changed = (render_kubernetes(s, args.kubernetes) if args.kubernetes
                   else render_all(args.root))
        print("\n".join(f"wrote {path}" for path in changed) or "everything is up to date")
        return 0
    if c == "doctor":
        from orchestrator.doctor import run_doctor  # loads prometheus-client: not at import

        return run_doctor(s, args.json)
    if c == "drill":
        from orchestrator import drill as drill_cmd  # loads prometheus-client: not at import

        if args.drill_command == "list":
            return drill_cmd.list_drills(args.json)
        return drill_cmd.run(s, args.names, args.all, args.parallel, args.json)
    if c == "loadtest":
        return loadtest_cli.run(args, s)
    if c == "migrate":
        return processes.run_migrate(s) if processes.preflight(s) else 2
    if c == "purge":
        return purge_cmd.run(s, args) if processes.preflight(s) else 2
    if c == "keys":
        return keys_cmd.run(s, args) if processes.preflight(s) else 2
    if c == "backup":
        return backup_cmd.run(s, args)
    if c == "agents" and args.agents_command == "retire":
        return processes.retire_agent(s, args.name) if processes.preflight(s) else 2
    client = cmd.Client(s)
    if c == "dlq":
        return dlq_cmd.run(client, args)
    if c == "schedule":
        return schedule_cmd.run(client, args)
    if c == "report":
        from orchestrator.report import run as run_report

        return run_report(client, s, args.since, args.json)
    if c == "submit":
        return cmd.submit(client, args.agent, args.input, wait=args.wait,
                          timeout_s=args.timeout, as_json=args.json,
                          idempotency_key=args.idempotency_key, max_attempts=args.max_attempts,
                          priority=args.priority, task_timeout_s=args.task_timeout_s,
                          run_at=args.run_at, delay_s=args.delay_s,
                          concurrency_key=args.concurrency_key, follow=args.follow,
                          callback_url=args.callback_url)
    if c == "tasks":
        return cmd.tasks(client, args.status, args.agent, args.limit, args.json,
                         cursor=args.cursor, every_page=args.every_page, stuck=args.stuck)
    if c == "stats":
        return cmd.stats(client, args.json, args.watch)
    if c == "events":
        return cmd.events(client, args.task_id, args.json, args.absolute)
    if c == "agents":
        return cmd.agents(client, args.json)
    if c == "callbacks":
        return cmd.callback_secret(client, args.rotate, args.json)
    if c == "follow":
        return cmd.follow_task(client, args.task_id, args.timeout, args.json)
    single = {"status": cmd.status, "cancel": cmd.cancel, "retry": cmd.retry}
    return single[c](client, args.task_id, args.json)


if __name__ == "__main__":
    sys.exit(main())
