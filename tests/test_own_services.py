"""`stack up` starts PostgreSQL, Redis and RabbitMQ of its own (data in the state directory) when
they do not answer on their default ports; `stack down` stops them. The defaults are moved to
free ports here so the machine's own services stay untouched."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import psycopg
import pytest
import redis

from service.ports import port_for
from stack import own_services
from stack.own_services import ensure_own, stop_own
from stack.services import answers

pytestmark = pytest.mark.integration


def test_a_taken_default_port_is_replaced_by_a_free_one() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert port_for(busy) != busy
    assert port_for(busy) == busy  # free again


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state directory the postgres and rabbitmq users can reach (pytest's tmp is 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="orch-stack-"))
    directory.chmod(0o755)
    yield directory / "stack"
    shutil.rmtree(directory, ignore_errors=True)


def test_services_that_do_not_answer_are_started_with_their_own_data_and_stopped(
        state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (_, binary, setting, start) in list(own_services.STARTERS.items()):
        monkeypatch.setitem(own_services.STARTERS, name,
                            (own_services.free_port(), binary, setting, start))
    overrides, problems = ensure_own(state)
    try:
        assert problems == []
        assert set(overrides) == {"ORCH_DATABASE_URL", "ORCH_REDIS_URL", "ORCH_AMQP_URL",
                                  "ORCH_RABBITMQ_NODE"}
        # the node name the runbook's rabbitmqctl commands are given reaches this instance
        listed = subprocess.run(["rabbitmqctl", "-q", "-n", overrides["ORCH_RABBITMQ_NODE"],
                                 "list_vhosts"], capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        with psycopg.connect(overrides["ORCH_DATABASE_URL"].rsplit("/", 1)[0] + "/postgres",
                             autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(overrides["ORCH_REDIS_URL"]).ping()

        async def amqp() -> None:
            connection = await aio_pika.connect(overrides["ORCH_AMQP_URL"])
            await connection.close()
        asyncio.run(amqp())
        assert (state / "postgres" / "data" / "PG_VERSION").exists()
        assert (state / "redis").is_dir() and (state / "rabbitmq" / "mnesia").is_dir()
    finally:
        stopped = stop_own(state)
    assert len(stopped) == 3
    for setting, url in overrides.items():
        if not setting.endswith("_URL"):
            continue
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert not answers(port), url
