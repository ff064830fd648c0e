"""Operator commands that talk to the API: submit, status, tasks, events, agents."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import httpx

from orchestrator.output import print_events, print_json, print_table, print_task
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


def submit(client: Client, agent: str, payload: str, *, wait: bool, timeout_s: float,
           as_json: bool, idempotency_key: str | None, max_attempts: int | None) -> int:
    try:
        data = json.loads(payload)
    except json.JSONDecodeError as exc:
        print(f"error: INPUT is not valid JSON: {exc}", file=sys.stderr)
        return 2
    body: dict[str, Any] = {"agent": agent, "input": data}
    if max_attempts:
        body["max_attempts"] = max_attempts
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    task = client.call("POST", "/v1/tasks", json=body, headers=headers)
    if wait:
        deadline = time.monotonic() + timeout_s
        while task["status"] not in FINAL and time.monotonic() < deadline:
            time.sleep(0.2)
            task = client.call("GET", f"/v1/tasks/{task['id']}")
    print_json(task) if as_json else print_task(task)
    if wait and task["status"] != "succeeded":
        return 1
    return 0


def status(client: Client, task_id: str, as_json: bool) -> int:
    task = client.call("GET", f"/v1/tasks/{task_id}")
    print_json(task) if as_json else print_task(task)
    return 0


def tasks(client: Client, status_filter: str | None, agent: str | None, limit: int,
          as_json: bool) -> int:
    params = {k: v for k, v in {"status": status_filter, "agent": agent, "limit": limit}.items()
              if v is not None}
    page = client.call("GET", "/v1/tasks", params=params)
    if as_json:
        print_json(page)
    else:
        print_table(page["items"], ["id", "agent", "status", "attempts", "created_at", "error"])
    return 0


def events(client: Client, task_id: str, as_json: bool) -> int:
    timeline = client.call("GET", f"/v1/tasks/{task_id}/events")
    print_json(timeline) if as_json else print_events(timeline["events"])
    return 0


def agents(client: Client, as_json: bool) -> int:
    listing = client.call("GET", "/v1/agents")
    if as_json:
        print_json(listing)
        return 0
    print_table(listing["agents"], ["name", "live_workers", "queue", "description"])
    print(f"\nworkers (from {listing['source']}):")
    print_table(listing["workers"], ["worker_id", "agents", "in_flight", "concurrency"])
    return 0


def cancel(client: Client, task_id: str, as_json: bool) -> int:
    task = client.call("POST", f"/v1/tasks/{task_id}/cancel")
    print_json(task) if as_json else print_task(task)
    return 0


def retry(client: Client, task_id: str, as_json: bool) -> int:
    task = client.call("POST", f"/v1/tasks/{task_id}/retry")
    print_json(task) if as_json else print_task(task)
    return 0
