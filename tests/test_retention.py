"""Retention against the real API and PostgreSQL: finished tasks past their status's retention
go with their timelines, in batches, and nothing else does; by hand with ``orchestrator purge``
(``--dry-run`` counts), and in the background of the API, while submissions keep flowing."""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import time

import httpx
import psycopg
import pytest

from tests.services import ORCHESTRATOR, Env, api_client, start_api, wait_until

pytestmark = pytest.mark.integration

SEED = (
    "WITH t AS (INSERT INTO tasks (id, agent, input, status, max_attempts, timeout_s,"
    " input_checksum, tenant, published_at, created_at, finished_at)"
    " SELECT gen_random_uuid(), 'echo', '1', %(status)s, 3, 60, 'seeded', 'test', now(),"
    " now() - make_interval(days => %(days)s), now() - make_interval(days => %(days)s)"
    " FROM generate_series(1, %(n)s) RETURNING id, status)"
    " INSERT INTO task_events (task_id, kind, status, attempt)"
    " SELECT id, k, status, 1 FROM t, unnest(ARRAY['submitted', 'succeeded']) AS k"
)


def seed(env: Env, status: str, days: int, n: int) -> None:
    with psycopg.connect(env.settings.database.url, autocommit=True) as conn:
        conn.execute(SEED, {"status": status, "days": days, "n": n})


def count(env: Env, sql: str) -> int:
    with psycopg.connect(env.settings.database.url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return int(row[0])


def purge(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ORCHESTRATOR, "purge", *args], env={**os.environ, **env.environ},
                          capture_output=True, text=True, timeout=120)


def seeded_by_status(env: Env) -> dict[str, int]:
    with psycopg.connect(env.settings.database.url, autocommit=True) as conn:
        rows = conn.execute("SELECT status, count(*) FROM tasks WHERE input_checksum = 'seeded'"
                            " GROUP BY 1").fetchall()
    return {status: n for status, n in rows}


def test_purge_by_hand_deletes_only_what_is_due(own_env: Env) -> None:
    subprocess.run([*ORCHESTRATOR, "migrate"], env={**os.environ, **own_env.environ},
                   check=True, capture_output=True, timeout=60)
    seed(own_env, "succeeded", 20, 30)
    seed(own_env, "succeeded", 3, 10)
    seed(own_env, "dead", 20, 5)
    seed(own_env, "queued", 20, 4)  # unfinished: never purged, whatever its age
    dry = purge(own_env, "--older-than", "7d", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert '"would_delete": 30' in dry.stdout and '"would_delete": 5' in dry.stdout
    assert seeded_by_status(own_env) == {"succeeded": 40, "dead": 5, "queued": 4}

    only_dead = purge(own_env, "--older-than", "7d", "--status", "dead")
    assert only_dead.returncode == 0, only_dead.stderr
    assert re.search(r"^dead\s+5\s*$", only_dead.stdout, re.M), only_dead.stdout
    assert seeded_by_status(own_env) == {"succeeded": 40, "queued": 4}

    everything = purge(own_env, "--older-than", "7d")
    assert everything.returncode == 0
    assert seeded_by_status(own_env) == {"succeeded": 10, "queued": 4}
    # the timelines went with their tasks
    assert count(own_env, "SELECT count(*) FROM task_events e WHERE NOT EXISTS"
                          " (SELECT 1 FROM tasks t WHERE t.id = e.task_id)") == 0
    assert count(own_env, "SELECT count(*) FROM task_events") == 2 * 14

    bad = purge(own_env, "--older-than", "a week")
    assert bad.returncode == 2 and "--older-than: not a duration" in bad.stderr


async def test_the_api_purges_in_batches_while_submissions_flow(own_env: Env) -> None:
    url = start_api(own_env, environ=own_env.with_vars(
        retention_interval_s="1", retention_batch="500", retention_dead="never"))
    async with api_client(own_env, url) as client:
        async def submit_latencies(n: int) -> list[float]:
            out = []
            for i in range(n):
                started = time.perf_counter()
                answer = await client.post("/v1/tasks", json={"agent": "sleep", "input": i})
                assert answer.status_code == 202, answer.text
                out.append(time.perf_counter() - started)
            return out

        quiet = await submit_latencies(100)
        await asyncio.to_thread(seed, own_env, "succeeded", 15, 20_000)
        await asyncio.to_thread(seed, own_env, "dead", 400, 50)  # kept: retention "never"
        purging = asyncio.create_task(asyncio.to_thread(
            wait_until, lambda: seeded_by_status(own_env).get("succeeded", 0) == 0,
            timeout_s=120, interval_s=0.2))
        during = await submit_latencies(200)
        await purging
        assert seeded_by_status(own_env) == {"dead": 50}
        assert count(own_env, "SELECT count(*) FROM tasks WHERE status = 'queued'") == 300

        async with httpx.AsyncClient(base_url=url) as plain:
            page = (await plain.get("/metrics")).text
    purged = re.search(r'^orchestrator_tasks_purged_total{status="succeeded"} (\S+)$', page, re.M)
    assert purged and float(purged.group(1)) == 20_000
    statements = re.search(
        r'^orchestrator_db_query_duration_seconds_count{operation="retention_purge"} (\S+)$',
        page, re.M)
    assert statements and float(statements.group(1)) >= 20_000 / 500  # in batches of 500

    def p(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000

    print(f"\nsubmit latency, quiet: p50 {p(quiet, 50):.1f} ms p99 {p(quiet, 99):.1f} ms;"
          f" while 20,000 tasks were purged: p50 {p(during, 50):.1f} ms"
          f" p99 {p(during, 99):.1f} ms")
