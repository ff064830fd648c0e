"""``orchestrator backup`` against the real servers, as an operator runs it: a dump verified by a
restore into a scratch database, a damaged dump caught, a real restore that strands no task,
and the age of the last verified backup on the API's ``/metrics``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from catalog import metrics, names
from catalog.metrics import series_name
from tests.services import (
    ORCHESTRATOR,
    PG_ADMIN,
    Env,
    api_client,
    rabbitmqctl,
    start_agent,
    start_api,
    wait_until,
)
from tests.tasks import events, kinds, submit, wait_for

pytestmark = pytest.mark.integration

CHECKS = ["checksum", "restore", "schema", "row counts", "task inputs", "events"]


def backup_cli(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ORCHESTRATOR, "backup", *args], env={**os.environ, **env.environ},
                          capture_output=True, text=True, timeout=180)


def rows(env: Env, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(env.settings.database.url) as conn:
        return conn.execute(query.encode()).fetchall()


def timelines(env: Env) -> dict[str, list[str]]:
    """Task id -> its event kinds, in order."""
    found: dict[str, list[str]] = {}
    for task_id, kind in rows(env, "SELECT task_id::text, kind FROM task_events ORDER BY id"):
        found.setdefault(task_id, []).append(kind)
    return found


def scratch_databases() -> list[str]:
    with psycopg.connect(PG_ADMIN) as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database"
                                           " WHERE datname LIKE 'orch_verify_%'").fetchall()]


def created(env: Env, folder: Path) -> tuple[Path, dict[str, Any]]:
    out = backup_cli(env, "create", "--to", str(folder), "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    return Path(answer["file"]), answer["manifest"]


def gauge(text: str, metric: metrics.Sampled) -> float:
    name = series_name(metric)
    return next(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith(name + " "))


async def test_a_backup_verifies_when_the_live_data_is_gone_and_restores_every_task(
        own_env: Env, tmp_path: Path) -> None:
    api = start_api(own_env)
    async with api_client(own_env, api) as client:  # its key is in the backup too
        # Given finished tasks, one queued (no echo worker left) and one running
        echo = start_agent(own_env, "--agents", "echo")
        finished = [(await submit(client, "echo", {"n": n}))["id"] for n in range(20)]
        for task_id in finished:
            await wait_for(client, task_id)
        echo.terminate()
        queued = (await submit(client, "echo", {"n": "queued"}))["id"]
        sleeper = start_agent(own_env, "--agents", "sleep")
        running = (await submit(client, "sleep", {"seconds": 5}))["id"]
        await wait_for(client, running, {"running"})
        await wait_for(client, queued, {"queued"})
        before = dict(rows(own_env, "SELECT id::text, status FROM tasks"))
        before_events = timelines(own_env)

        # When it is backed up, its worker dies and the live database loses every event
        started = time.monotonic()
        dump, manifest = created(own_env, tmp_path)
        dump_s = time.monotonic() - started
        sleeper.kill()
        assert manifest["row_counts"]["tasks"] == 22
        assert manifest["row_counts"]["task_events"] == sum(map(len, before_events.values()))
        assert manifest["schema_version"] == int(manifest["migrations"][-1][:4])
        rows(own_env, "DELETE FROM task_events RETURNING id")

        # Then the dump verifies (every check) and the live database is reported as differing
        started = time.monotonic()
        verified = backup_cli(own_env, "verify", str(dump), "--json")
        verify_s = time.monotonic() - started
        assert verified.returncode == 0, verified.stdout + verified.stderr
        report = json.loads(verified.stdout)
        assert [(c["name"], c["passed"]) for c in report["checks"]] == [(n, True) for n in CHECKS]
        assert report["live"]["differs"] and report["recorded"]
        assert report["live"]["tables"]["task_events"] == {
            "backup": manifest["row_counts"]["task_events"], "live": 0}
        assert "live database differs from the backup" in report["live"]["summary"]
        assert scratch_databases() == []
        human = backup_cli(own_env, "verify", str(dump))
        assert human.returncode == 0 and "live database differs from the backup" in human.stdout
        print(f"\ndump {manifest['size_bytes']} bytes of {sum(manifest['row_counts'].values())}"
              f" rows: create {dump_s:.2f} s ({manifest['duration_s']} s inside), verify"
              f" {verify_s:.2f} s ({report['duration_s']} s inside)")

        # When the broker has lost their messages too and the backup is restored
        for agent in ("echo", "sleep"):
            rabbitmqctl("purge_queue", "-p", own_env.name, names.agent_queue(agent))
        refused = backup_cli(own_env, "restore", str(dump))
        assert refused.returncode == 2 and "--yes" in refused.stderr
        assert rows(own_env, "SELECT count(*) FROM task_events") == [(0,)]
        restored = backup_cli(own_env, "restore", str(dump), "--yes", "--json")
        assert restored.returncode == 0, restored.stderr
        assert json.loads(restored.stdout)["requeued"] == {"queued": 1, "retrying": 0,
                                                           "running": 1}

        # Then every task is back with its timeline, the unfinished ones handed to the outbox
        assert dict(rows(own_env, "SELECT id::text, status FROM tasks")) == {
            **before, running: "queued"}
        after_events = timelines(own_env)
        assert {t: after_events[t] for t in finished} == {t: before_events[t] for t in finished}
        for task_id in (queued, running):
            assert after_events[task_id][:len(before_events[task_id])] == before_events[task_id]
            assert after_events[task_id][len(before_events[task_id])] == "restored"

        # And once workers run, both finish, published again by the restore (no reconciler)
        start_agent(own_env, "--agents", "echo,sleep")
        assert (await wait_for(client, queued, timeout_s=30))["status"] == "succeeded"
        ran = await wait_for(client, running, timeout_s=30)
        assert ran["status"] == "succeeded" and ran["attempts"] == 2
        timeline = await events(client, running)
        restore_at = kinds(timeline).index("restored")
        assert timeline[restore_at]["detail"]["was"] == "running"
        assert kinds(timeline)[restore_at + 1:][:3] == ["published", "started", "succeeded"]
        assert "republished" not in kinds(timeline) + kinds(await events(client, queued))


def test_a_damaged_dump_fails_its_checksum_and_is_not_restored(own_env: Env,
                                                               tmp_path: Path) -> None:
    # Given a backup of a migrated database, some of whose bytes then flip
    migrated = subprocess.run([*ORCHESTRATOR, "migrate"], env={**os.environ, **own_env.environ},
                              capture_output=True, text=True, timeout=60)
    assert migrated.returncode == 0, migrated.stderr
    dump, manifest = created(own_env, tmp_path)
    damaged = bytearray(dump.read_bytes())
    for at in range(len(damaged) // 2, len(damaged) // 2 + 16):
        damaged[at] ^= 0xFF
    dump.write_bytes(bytes(damaged))

    # When it is verified
    verified = backup_cli(own_env, "verify", str(dump), "--json")

    # Then the checksum check fails, verify exits 1 and nothing is recorded as verified
    assert verified.returncode == 1, verified.stderr
    report = json.loads(verified.stdout)
    checksum = next(c for c in report["checks"] if c["name"] == "checksum")
    assert not checksum["passed"] and "damaged" in checksum["detail"]
    assert not report["passed"] and not report["recorded"]
    assert scratch_databases() == []
    assert rows(own_env, "SELECT verified_at FROM backups") == [(None,)]
    stale = backup_cli(own_env, "status", "--check")
    assert stale.returncode == 1 and "no backup was ever verified" in stale.stdout
    # And a restore refuses it before touching the database
    refused = backup_cli(own_env, "restore", str(dump), "--yes")
    assert refused.returncode == 2 and "does not match its manifest" in refused.stderr
    assert manifest["sha256"] in dump.with_suffix(".manifest.json").read_text()


def test_the_api_exposes_the_age_of_the_last_verified_backup(own_env: Env,
                                                             tmp_path: Path) -> None:
    api = start_api(own_env)
    with httpx.Client(base_url=api, timeout=15) as http:
        # Given no backup was ever verified: none at all, and the age counts from the
        # database's first migration (a new deployment gets the full limit for its first one)
        page = http.get("/metrics").text
        assert gauge(page, metrics.BACKUP_LAST_VERIFIED) == 0
        set_up = rows(own_env, "SELECT extract(epoch FROM now() - min(applied_at))::float8"
                               " FROM schema_migrations")[0][0]
        assert set_up - 5 <= gauge(page, metrics.BACKUP_VERIFIED_AGE) <= set_up + 5
        # and once the database is older than the limit, that age is past it (the alert's)
        rows(own_env, "UPDATE schema_migrations SET applied_at = now() - interval '27 hours'"
                      " RETURNING version")
        limit_s = own_env.settings.database.backup_max_age_s
        assert gauge(http.get("/metrics").text, metrics.BACKUP_VERIFIED_AGE) > limit_s

        # When a backup is made and verified
        dump, _ = created(own_env, tmp_path)
        before = time.time()
        assert backup_cli(own_env, "verify", str(dump)).returncode == 0

        # Then the API reports when, and an age within the limit (backup status agrees)
        def verified_page() -> str | None:
            text = http.get("/metrics").text
            return text if gauge(text, metrics.BACKUP_LAST_VERIFIED) > 0 else None

        page = wait_until(verified_page, timeout_s=15, interval_s=0.2)
        assert before - 1 <= gauge(page, metrics.BACKUP_LAST_VERIFIED) <= time.time() + 1
        assert 0 <= gauge(page, metrics.BACKUP_VERIFIED_AGE) < 60
        fresh = backup_cli(own_env, "status", "--check", "--json")
        assert fresh.returncode == 0 and json.loads(fresh.stdout)["fresh"]
