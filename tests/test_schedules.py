"""Recurring schedules: cron due times and missed-fire plans (unit), the API and CLI (against
the session's API), and each due time fired exactly once by three API processes at a time."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from service import cron
from service.db.migrate import migrate
from service.db.pool import open_pool
from service.db.schedules import NewSchedule, ScheduleStore
from service.domain import TaskFields
from tests.services import Env, api_client, start_agent, start_api, wait_until
from tests.test_cli import command_line

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- due times and plans ---------------------------------------------------------------------

@pytest.mark.unit
def test_catch_up_fires_every_missed_due_time_oldest_first() -> None:
    plan = cron.plan("* * * * *", "UTC", T0, T0 + timedelta(minutes=5, seconds=30), "catch_up",
                     grace_s=60)
    assert plan.fire == [T0 + timedelta(minutes=n) for n in range(6)]
    assert plan.skipped == 0 and plan.next_due_at == T0 + timedelta(minutes=6)


@pytest.mark.unit
def test_catch_up_goes_on_in_the_next_pass_past_its_per_pass_limit() -> None:
    plan = cron.plan("* * * * *", "UTC", T0, T0 + timedelta(days=1), "catch_up", grace_s=60)
    assert len(plan.fire) == cron.CATCH_UP_PER_PASS
    assert plan.next_due_at == T0 + timedelta(minutes=cron.CATCH_UP_PER_PASS)


@pytest.mark.unit
def test_skip_fires_only_the_latest_due_time_within_the_grace() -> None:
    plan = cron.plan("* * * * *", "UTC", T0, T0 + timedelta(minutes=5, seconds=30), "skip",
                     grace_s=60)
    assert plan.fire == [T0 + timedelta(minutes=5)] and plan.skipped == 5
    assert plan.next_due_at == T0 + timedelta(minutes=6)


@pytest.mark.unit
def test_skip_fires_nothing_when_even_the_latest_is_past_the_grace() -> None:
    plan = cron.plan("*/5 * * * *", "UTC", T0 - timedelta(hours=1),
                     T0 + timedelta(minutes=5, seconds=30), "skip", grace_s=10)
    assert plan.fire == [] and plan.skipped == 14  # 09:00 .. 10:05, every 5 minutes
    assert plan.next_due_at == T0 + timedelta(minutes=10)


@pytest.mark.unit
def test_a_schedule_on_time_fires_its_due_time_under_either_policy() -> None:
    for missed in cron.MISSED:
        plan = cron.plan("*/5 * * * *", "UTC", T0, T0 + timedelta(seconds=0.4), missed, 60)
        assert (plan.fire, plan.skipped) == ([T0], 0)


@pytest.mark.unit
def test_due_times_follow_the_schedules_time_zone() -> None:
    winter = cron.next_due("0 9 * * *", "Europe/Berlin", T0)
    summer = cron.next_due("0 9 * * *", "Europe/Berlin", datetime(2026, 7, 1, tzinfo=UTC))
    assert (winter.hour, summer.hour) == (8, 7)  # 09:00 CET, 09:00 CEST, in UTC


@pytest.mark.unit
@pytest.mark.parametrize(("expr", "zone", "says"), [
    ("* * * *", "UTC", "five fields"),
    ("61 * * * *", "UTC", "Bad minute"),
    ("0 0 31 2 *", "UTC", "cron"),
    ("* * * * *", "Mars/Olympus", "time zone 'Mars/Olympus' is unknown"),
])
def test_what_cannot_be_scheduled_is_said(expr: str, zone: str, says: str) -> None:
    with pytest.raises(cron.CronError, match=says):
        cron.check(expr, zone)


# --- the API and the CLI -------------------------------------------------------------------

@pytest.mark.integration
async def test_a_schedule_is_created_read_paused_resumed_and_deleted(
        client: httpx.AsyncClient) -> None:
    body = {"name": "api-life", "cron": "0 4 * * *", "agent": "echo", "input": {"n": 1},
            "timezone": "Asia/Kolkata", "missed": "catch_up", "priority": 3,
            "concurrency_key": "reports"}
    created = await client.post("/v1/schedules", json=body)
    assert created.status_code == 201, created.text
    schedule = created.json()
    assert (schedule["missed"], schedule["paused"], schedule["fired"]) == ("catch_up", False, 0)
    assert schedule["concurrency_key"] == "reports"
    assert _at(schedule["next_due_at"]).astimezone(UTC).strftime("%H:%M") == "22:30"
    again = await client.post("/v1/schedules", json=body)
    assert again.status_code == 409 and "exists already" in again.json()["detail"]
    listed = (await client.get("/v1/schedules")).json()["schedules"]
    assert "api-life" in [s["name"] for s in listed]
    paused = (await client.post("/v1/schedules/api-life/pause")).json()
    assert paused["paused"] is True
    resumed = (await client.post("/v1/schedules/api-life/resume")).json()
    assert resumed["paused"] is False and _at(resumed["next_due_at"]) > datetime.now(UTC)
    assert (await client.delete("/v1/schedules/api-life")).status_code == 204
    gone = await client.get("/v1/schedules/api-life")
    assert gone.status_code == 404 and "orchestrator schedule list" in gone.json()["detail"]


@pytest.mark.integration
@pytest.mark.parametrize(("fields", "status", "says"), [
    ({"cron": "every minute"}, 400, "five fields"),
    ({"cron": "0 0 31 2 *"}, 400, "Bad day-of-month"),
    ({"timezone": "Mars/Olympus"}, 400, "is unknown"),
    ({"missed": "sometimes"}, 400, "missed"),
    ({"name": "Not A Name"}, 400, "name"),
    ({"agent": "nobody"}, 422, "nobody"),
    ({"priority": 9}, 403, "tasks:priority"),
])
async def test_a_schedule_that_cannot_be_kept_is_refused_naming_the_field(
        client: httpx.AsyncClient, fields: dict[str, Any], status: int, says: str) -> None:
    body = {"name": "refused", "cron": "* * * * *", "agent": "echo", **fields}
    response = await client.post("/v1/schedules", json=body)
    assert response.status_code == status, response.text
    assert says in json.dumps(response.json())


@pytest.mark.integration
def test_the_cli_manages_schedules(env: Env, api_url: str, api_key: str) -> None:
    run = command_line(env, api_url, api_key)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run("schedule", *args)  # type: ignore[no-any-return]

    made = cli("create", "cli-life", "--cron", "*/5 * * * *", "echo", '{"via": "cli"}',
               "--missed", "catch-up", "--json")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["missed"] == "catch_up"
    listing = cli("list")
    assert listing.returncode == 0 and "cli-life" in listing.stdout
    assert "paused:       True" in cli("pause", "cli-life").stdout
    assert "paused:       False" in cli("resume", "cli-life").stdout
    assert cli("delete", "cli-life").returncode == 0
    missing = cli("show", "cli-life")
    assert missing.returncode != 0 and "does not exist" in missing.stderr


@pytest.mark.integration
async def test_the_most_overdue_active_schedule_is_measured(own_env: Env) -> None:
    pool = await open_pool(own_env.settings.database, name="test-schedules")
    try:
        await migrate(pool)
        store = ScheduleStore(pool)
        now = datetime.now(UTC)
        for name, due in (("late", now - timedelta(minutes=10)), ("soon", now + timedelta(hours=1)),
                          ("paused", now - timedelta(days=1))):
            await store.create(NewSchedule(
                tenant="test", name=name, cron="* * * * *", timezone="UTC", missed="skip",
                task=TaskFields("echo", None, "-", 0, 1, 10), created_by=None,
                next_due_at=due))
        await store.set_paused("test", "paused", True)
        active, overdue_s = await store.overdue()
        assert active == 2 and 600 <= overdue_s < 610
    finally:
        await pool.close()


# --- firing, exactly once ------------------------------------------------------------------

def _fires(database_url: str) -> list[tuple[str, datetime, str]]:
    """Every task a schedule created: (schedule, due time, status), from the timelines."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT e.detail->>'schedule', (e.detail->>'due_at')::timestamptz, t.status"
            " FROM task_events e JOIN tasks t ON t.id = e.task_id"
            " WHERE e.kind = 'submitted' AND e.detail ? 'schedule'").fetchall()
    return [(str(name), due, str(status)) for name, due, status in rows]


async def _create(client: httpx.AsyncClient, name: str, missed: str,
                  cron_expr: str = "* * * * *") -> None:
    response = await client.post("/v1/schedules", json={
        "name": name, "cron": cron_expr, "agent": "echo", "input": {"schedule": name},
        "missed": missed, "concurrency_key": name})
    assert response.status_code == 201, response.text


def _as_if_down_since(database_url: str, minutes: int) -> datetime:
    """Move every schedule's next due time back: as if no API had run for ``minutes``."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "UPDATE schedules SET next_due_at = date_trunc('minute', now())"
            " - make_interval(mins => %s) RETURNING next_due_at", (minutes,)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


@pytest.mark.integration
async def test_after_downtime_catch_up_fires_each_due_time_and_skip_only_the_latest(
        own_env: Env) -> None:
    url = start_api(own_env)
    start_agent(own_env, "--agents", "echo")
    database = own_env.settings.database.url
    async with api_client(own_env, url) as client:
        await _create(client, "behind-catch-up", "catch_up")
        await _create(client, "behind-skip", "skip")
        since = _as_if_down_since(database, 5)
        expected = int((datetime.now(UTC) - since).total_seconds() // 60) + 1  # 6, or 7
        wait_until(lambda: len([f for f in _fires(database) if f[0] == "behind-catch-up"])
                   >= expected, 20)
        await asyncio.sleep(1.5)  # a few more passes: nothing more fires
        fires = _fires(database)
        # (a minute may begin while this runs: both schedules then fire it too)
        caught_up = sorted(due for name, due, _ in fires if name == "behind-catch-up")
        assert caught_up == [since + timedelta(minutes=n) for n in range(len(caught_up))]
        assert len(caught_up) >= expected
        skipped = sorted(due for name, due, _ in fires if name == "behind-skip")
        # the due time less than a minute late fires; a pass that runs just after a minute
        # began (before ``expected`` was counted or after) finds that newer minute the latest
        latest = since + timedelta(minutes=expected - 1)
        assert skipped and skipped[0] in (latest - timedelta(minutes=1), latest,
                                          latest + timedelta(minutes=1))
        assert skipped == [skipped[0] + timedelta(minutes=n) for n in range(len(skipped))]
        passed_over = int((skipped[0] - since).total_seconds() // 60)
        state = {s["name"]: s for s in (await client.get("/v1/schedules")).json()["schedules"]}
        assert (state["behind-skip"]["fired"], state["behind-skip"]["skipped"]) == (
            len(skipped), passed_over)
        assert passed_over >= 5
        assert state["behind-catch-up"]["fired"] == len(caught_up)
        assert _at(state["behind-skip"]["next_due_at"]) > datetime.now(UTC)
        wait_until(lambda: {status for *_, status in _fires(database)} == {"succeeded"}, 20)
        with psycopg.connect(database) as conn:
            keys = {row[0] for row in conn.execute("SELECT concurrency_key FROM tasks")}
        assert keys == {"behind-catch-up", "behind-skip"}  # each task has its schedule's key
        exposed = (await client.get("/metrics")).text
        assert "orchestrator_schedules_active 2.0" in exposed
        assert "orchestrator_schedule_overdue_seconds 0.0" in exposed
        assert 'orchestrator_schedule_fires_total{outcome="skipped"}' in exposed


@pytest.mark.integration
async def test_three_api_processes_fire_each_due_time_once(own_env: Env) -> None:
    """Twenty schedules, thirty minutes behind, caught up by three API processes at once:
    620 due times, each fired once."""
    url = start_api(own_env, workers=3)
    database = own_env.settings.database.url
    async with api_client(own_env, url) as client:
        for n in range(20):
            await _create(client, f"contended-{n}", "catch_up")
    since = _as_if_down_since(database, 30)
    expected = 20 * (int((datetime.now(UTC) - since).total_seconds() // 60) + 1)
    wait_until(lambda: len(_fires(database)) >= expected, 60, interval_s=0.5)
    await asyncio.sleep(2)
    fires = [(name, due) for name, due, _ in _fires(database)]
    assert len(fires) == len(set(fires)) >= expected  # a minute may have begun meanwhile
    for n in range(20):  # each schedule: every minute from the outage on, none missing
        dues = sorted(due for name, due in fires if name == f"contended-{n}")
        assert dues == [since + timedelta(minutes=k) for k in range(len(dues))]


@pytest.mark.integration
@pytest.mark.timeout(330)
async def test_an_every_minute_schedule_under_three_api_processes_fires_once_a_minute(
        own_env: Env) -> None:
    """The acceptance run: ``*/1 * * * *`` for three minutes, three API processes."""
    url = start_api(own_env, workers=3)
    database = own_env.settings.database.url
    async with api_client(own_env, url) as client:
        await _create(client, "every-minute", "skip", "*/1 * * * *")
        first = _at((await client.get("/v1/schedules/every-minute")).json()["next_due_at"])
        wait_until(lambda: len(_fires(database)) >= 3, 250, interval_s=1)
        await asyncio.sleep(2)
        fires = sorted(due for _, due, _ in _fires(database))
        assert fires[:3] == [first + timedelta(minutes=n) for n in range(3)]
        assert len(fires) == len(set(fires))
        with psycopg.connect(database) as conn:
            delays = conn.execute(
                "SELECT extract(epoch FROM t.created_at - f.due_at) FROM schedule_fires f"
                " JOIN tasks t ON t.id = f.task_id").fetchall()
        assert all(0 <= float(d) < 3 for (d,) in delays), delays  # fired when due
