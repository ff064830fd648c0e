"""Operator commands that talk to the API: submit, status, tasks, stats, events, agents,
cancel, retry. Wherever a task id is asked for, a unique start of one will do."""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

import httpx

from orchestrator.output import print_events, print_json, print_stats, print_table, print_task
from service.settings import Settings

FINAL = {"succeeded", "dead", "cancelled"}


class ApiError(Exception):
    """The API answered with an error, or could not be reached."""


class Client:
    def __init__(self, settings: Settings) -> None:
        key = settings.operator_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=settings.api.base_url, headers=headers, timeout=30)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the API at {self.http.base_url}: {exc}"
                           " (is 'orchestrator up' or 'orchestrator api' running?)") from exc
        body = response.json() if response.content else {}
        if response.status_code >= 400:
            detail = body.get("detail", response.text) if isinstance(body, dict) else body
            raise ApiError(f"HTTP {response.status_code}: {detail}")
        return body


UUID_TEXT = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
MIN_ID_PREFIX = 4
NOT_FINISHED = 3
"""Exit code of ``submit --wait`` when the task is still unfinished at ``--timeout``."""


def resolve_task_id(client: Client, given: str) -> str:
    """A whole task id, or the one task whose id starts with ``given``."""
    if UUID_TEXT.fullmatch(given):
        return given
    digits = given.replace("-", "")
    if not re.fullmatch(r"[0-9a-fA-F]+", digits or "-"):
        raise ApiError(f"{given!r} is not a task id nor the start of one (hex digits)")
    if len(digits) < MIN_ID_PREFIX:
        raise ApiError(f"give at least {MIN_ID_PREFIX} characters of the task id, not {given!r}")
    page = client.call("GET", "/v1/tasks", params={"id_prefix": given, "limit": 5})
    ids = [task["id"] for task in page["items"]]
    if not ids:
        raise ApiError(f"no task id starts with {given!r}")
    if len(ids) > 1:
        more = "+" if page.get("next_cursor") else ""
        raise ApiError(f"{given!r} starts {len(ids)}{more} task ids ({', '.join(ids[:3])}):"
                       " give more characters")
    return str(ids[0])


def submit(client: Client, agent: str, payload: str, *, wait: bool, timeout_s: float,
           as_json: bool, idempotency_key: str | None, max_attempts: int | None,
           priority: int | None = None, task_timeout_s: float | None = None,
           run_at: str | None = None, delay_s: float | None = None,
           concurrency_key: str | None = None, follow: bool = False,
           callback_url: str | None = None) -> int:
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        print(f"error: INPUT is not valid JSON: {exc}", file=sys.stderr)
        return 2
    body: dict[str, Any] = {"agent": agent, "input": data}
    for field, value in (("max_attempts", max_attempts), ("priority", priority),
                         ("timeout_s", task_timeout_s), ("run_at", run_at),
                         ("delay_s", delay_s), ("concurrency_key", concurrency_key),
                         ("callback_url", callback_url)):
        if value is not None:
            body[field] = value
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    task = client.call("POST", "/v1/tasks", json=body, headers=headers)
    if follow:
        return follow_task(client, task["id"], timeout_s, as_json)
    if wait:
        task = _wait(client, task, timeout_s)
    print_json(task) if as_json else print_task(task)
    if not wait or task["status"] == "succeeded":
        return 0
    return 1 if task["status"] in FINAL else NOT_FINISHED


def follow_task(client: Client, task_id: str, timeout_s: float, as_json: bool) -> int:
    """Print the task's stream as it comes (its output on stdout, or stderr with ``--json``),
    then the final task; exit codes as ``submit --wait``."""
    from orchestrator.follow import follow

    task_id = resolve_task_id(client, task_id)
    print(f"task {task_id}", file=sys.stderr, flush=True)
    final = follow(client, task_id, timeout_s, out=sys.stderr if as_json else sys.stdout)
    if final is None:
        print(f"still unfinished after {timeout_s:g} s; follow it again with: orchestrator"
              f" follow {task_id}", file=sys.stderr)
        return NOT_FINISHED
    print_json(final) if as_json else print_task(final)
    return 0 if final["status"] == "succeeded" else 1


def _wait(client: Client, task: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Poll until the task finishes or ``timeout_s`` ends, telling each change on stderr."""
    started = time.monotonic()
    print(f"task {task['id']} {task['status']}", file=sys.stderr, flush=True)
    seen = task["status"]
    while task["status"] not in FINAL and time.monotonic() - started < timeout_s:
        time.sleep(0.2)
        task = client.call("GET", f"/v1/tasks/{task['id']}")
        if task["status"] != seen:
            seen = task["status"]
            print(f"  {time.monotonic() - started:6.1f}s  {seen} (attempt {task['attempts']})",
                  file=sys.stderr, flush=True)
    if task["status"] not in FINAL:
        print(f"still {task['status']} after {timeout_s:g} s; follow it with: orchestrator"
              f" status {task['id']}", file=sys.stderr)
    return task


def callback_secret(client: Client, rotate: bool, as_json: bool) -> int:
    """The secret this key's tenant's callbacks are signed with (a new one with ``rotate``)."""
    secret = client.call("POST" if rotate else "GET",
                         "/v1/callbacks/secret" + ("/rotate" if rotate else ""))
    if as_json:
        print_json(secret)
        return 0
    print(secret["secret"])
    until = secret.get("previous_secret_valid_until")
    print(f"tenant {secret['tenant']}; callbacks carry {secret['signature_header']}:"
          " t=<unix time>,v1=<HMAC-SHA256 of t, '.', the body>"
          + (f"; the previous secret signs too until {until}" if until else ""),
          file=sys.stderr)
    return 0


def status(client: Client, task_id: str, as_json: bool) -> int:
    task = client.call("GET", f"/v1/tasks/{resolve_task_id(client, task_id)}")
    print_json(task) if as_json else print_task(task)
    return 0


def tasks(client: Client, status_filter: str | None, agent: str | None, limit: int,
          as_json: bool, *, cursor: str | None = None, every_page: bool = False,
          stuck: bool = False) -> int:
    params: dict[str, Any] = {k: v for k, v in {
        "status": status_filter, "agent": agent, "cursor": cursor,
        "limit": MAX_PAGE if every_page else limit}.items() if v is not None}
    if stuck:
        params["stuck"] = "true"
    page = client.call("GET", "/v1/tasks", params=params)
    items = page["items"]
    while every_page and page["next_cursor"]:
        page = client.call("GET", "/v1/tasks", params={**params, "cursor": page["next_cursor"]})
        items.extend(page["items"])
    if as_json:
        print_json({"items": items, "next_cursor": page["next_cursor"]})
        return 0
    print_table(items, ["id", "agent", "status", "attempts", "created_at", "error"])
    if page["next_cursor"]:
        print(f"\nmore: add --cursor {page['next_cursor']} (or --all)")
    return 0


MAX_PAGE = 500
"""The API's largest page (``--all`` reads pages of this size)."""


def stats(client: Client, as_json: bool, watch: bool, every_s: float = 2.0) -> int:
    """The system at a glance; ``watch``: redrawn every ``every_s`` until Ctrl-C."""
    try:
        while True:
            snapshot = client.call("GET", "/v1/admin/stats")
            if as_json:
                print(json.dumps(snapshot, sort_keys=True) if watch else
                      json.dumps(snapshot, indent=2, sort_keys=True), flush=True)
            else:
                if watch:
                    print("\033[H\033[2J", end="")
                print_stats(snapshot)
            if not watch:
                return 0
            time.sleep(every_s)
    except KeyboardInterrupt:
        return 0


def events(client: Client, task_id: str, as_json: bool, absolute: bool = False) -> int:
    timeline = client.call("GET", f"/v1/tasks/{resolve_task_id(client, task_id)}/events")
    print_json(timeline) if as_json else print_events(timeline["events"], absolute)
    return 0


def agents(client: Client, as_json: bool) -> int:
    listing = client.call("GET", "/v1/agents")
    if as_json:
        print_json(listing)
        return 0
    for agent in listing["agents"]:
        agent["flow_limits"] = " ".join(f"{k}={v}" for k, v in agent["limits"].items()
                                        if v is not None) or "-"
    print_table(listing["agents"], ["name", "live_workers", "queue", "flow_limits",
                                    "description"])
    print(f"\nworkers (from {listing['source']}):")
    print_table(listing["workers"], ["worker_id", "agents", "in_flight", "concurrency"])
    return 0


def cancel(client: Client, task_id: str, as_json: bool) -> int:
    task = client.call("POST", f"/v1/tasks/{resolve_task_id(client, task_id)}/cancel")
    if as_json:
        print_json(task)
    elif task["status"] == "running":
        print(f"cancel requested: task {task['id']} is running; its agent is told to stop,"
              f" and the task ends as cancelled (orchestrator status {task['id']})")
    else:
        print_task(task)
    return 0


def retry(client: Client, task_id: str, as_json: bool) -> int:
    task = client.call("POST", f"/v1/tasks/{resolve_task_id(client, task_id)}/retry")
    print_json(task) if as_json else print_task(task)
    return 0
