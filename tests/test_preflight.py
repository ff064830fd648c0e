"""Start-up checks tell a service that is down from a URL that is wrong (port, user, password,
database, vhost), against the real PostgreSQL, RabbitMQ and Redis on 127.0.0.1."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from service.db.pool import open_pool
from service.errors import DependencyResourceMissing
from service.preflight import check_dependencies
from service.settings import Settings
from tests.services import free_port

pytestmark = pytest.mark.integration

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
GOOD = {"database_url": ADMIN_URL, "amqp_url": "amqp://guest:guest@127.0.0.1:5672/",
        "redis_url": "redis://127.0.0.1:6379/0"}


def settings(**changes: str | float) -> Settings:
    """Settings that reach every real service, but for ``changes``."""
    return Settings().with_overrides(**{**GOOD, **changes})


def only_line(problems: list[str], name: str) -> str:
    lines = [line for line in problems if name in line.split(" at ", 1)[0]]
    assert len(lines) == 1, problems
    return lines[0]


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def database_name() -> Iterator[str]:
    """A database name of this test's own, dropped afterwards whatever created it."""
    name = f"orch_preflight_{uuid.uuid4().hex[:12]}"
    yield name
    admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def role_without_createdb() -> Iterator[str]:
    name = f"orch_preflight_{uuid.uuid4().hex[:12]}"
    admin(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(name)))
    yield name
    admin(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


# --- PostgreSQL -----------------------------------------------------------------------------

async def test_postgres_on_a_wrong_port_says_it_answers_on_5432_instead_of_how_to_start_it(
) -> None:
    # Given a database URL (with a password) on a port where nothing listens
    port = free_port()
    config = settings(database_url=f"postgresql://postgres:secret@127.0.0.1:{port}/orchestrator")
    # When the start-up checks run
    problems = await check_dependencies(config)
    # Then the one line says nothing answers there, and that PostgreSQL answers on 5432
    line = only_line(problems, "PostgreSQL")
    assert line.startswith(f"error: PostgreSQL is not answering at "
                           f"postgresql://postgres:***@127.0.0.1:{port}/orchestrator "
                           "(connection refused); ")
    assert "PostgreSQL answers on 127.0.0.1:5432: check the port in ORCH_DATABASE_URL" in line
    assert "pg_ctlcluster" not in line
    assert "secret" not in line


async def test_postgres_where_nothing_runs_says_how_to_start_it() -> None:
    # Given a database URL on a loopback address where no PostgreSQL listens, default or not
    if answers("127.0.0.2", 5432):
        pytest.skip("a PostgreSQL answers on 127.0.0.2:5432 here")
    config = settings(database_url="postgresql://postgres@127.0.0.2:5432/orchestrator")
    # When the start-up checks run
    line = only_line(await check_dependencies(config), "PostgreSQL")
    # Then the line says nothing answers and how to start PostgreSQL
    assert line.startswith("error: PostgreSQL is not answering at "
                           "postgresql://postgres@127.0.0.2:5432/orchestrator "
                           "(connection refused). Start it with: pg_ctlcluster ")


async def test_postgres_with_a_role_that_does_not_exist_says_the_login_was_refused() -> None:
    # Given a database URL whose user does not exist on the running server
    config = settings(database_url="postgresql://no_such_user_xyz@127.0.0.1:5432/postgres")
    # When the start-up checks run
    line = only_line(await check_dependencies(config), "PostgreSQL")
    # Then the line says the login was refused, in the server's words, and what to check
    assert line == ("error: PostgreSQL at postgresql://no_such_user_xyz@127.0.0.1:5432/postgres"
                    ' refused the login: role "no_such_user_xyz" does not exist;'
                    " check the user and password in ORCH_DATABASE_URL")


async def test_postgres_database_the_role_may_not_create_says_it_is_missing_and_why(
        role_without_createdb: str, database_name: str) -> None:
    # Given a role that may log in but not create databases, and a database that does not exist
    url = f"postgresql://{role_without_createdb}@127.0.0.1:5432/{database_name}"
    # When the start-up checks run
    line = only_line(await check_dependencies(settings(database_url=url)), "PostgreSQL")
    # Then the line names the missing database and why it could not be created
    assert line.startswith(f"error: PostgreSQL at {url} has no database {database_name} "
                           "(and it could not be created: permission denied to create database)")
    assert "ORCH_DATABASE_URL" in line and "pg_ctlcluster" not in line


async def test_postgres_database_that_is_missing_is_created(database_name: str) -> None:
    # Given a database URL naming a database that does not exist yet
    config = settings(database_url=f"postgresql://postgres@127.0.0.1:5432/{database_name}")
    # When the start-up checks run
    problems = await check_dependencies(config)
    # Then there is no problem and the database exists
    assert problems == []
    with psycopg.connect(config.database.url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (database_name,)


async def test_open_pool_tells_a_missing_database_from_a_wrong_port(database_name: str) -> None:
    # Given a pool URL naming a database that does not exist (nothing creates it here)
    config = settings(database_url=f"postgresql://postgres@127.0.0.1:5432/{database_name}",
                      db_pool_timeout_s=1.0)
    # When the pool opens, Then the error names the database (not the pool's timeout)
    with pytest.raises(DependencyResourceMissing) as missing:
        await open_pool(config.database)
    assert str(missing.value).startswith(
        f"PostgreSQL at {config.database.url} has no database {database_name}; ")
    # And given a pool URL on a port where nothing listens
    port = free_port()
    config = settings(database_url=f"postgresql://postgres@127.0.0.1:{port}/x",
                      db_pool_timeout_s=1.0)
    # When the pool opens, Then the error says nothing answers and PostgreSQL answers on 5432
    with pytest.raises(Exception, match=r"not answering .*\(connection refused\); "
                                        r"PostgreSQL answers on 127\.0\.0\.1:5432"):
        await open_pool(config.database)


async def test_a_postgres_that_does_not_answer_is_reported_within_15_seconds() -> None:
    # Given a database URL on a port where nothing listens
    config = settings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    # When the start-up checks run
    started = time.monotonic()
    problems = await check_dependencies(config)
    # Then they report it within 15 s (connect timeouts, not the pool's retry loop)
    assert time.monotonic() - started < 15
    assert "not answering" in only_line(problems, "PostgreSQL")


# --- RabbitMQ -------------------------------------------------------------------------------

async def test_rabbitmq_with_a_wrong_password_says_the_login_was_refused() -> None:
    # Given an AMQP URL with the wrong password
    config = settings(amqp_url="amqp://guest:wrong@127.0.0.1:5672/")
    # When the start-up checks run
    line = only_line(await check_dependencies(config), "RabbitMQ")
    # Then the line says the broker refused the login, without printing the password
    assert line.startswith("error: RabbitMQ at amqp://guest:***@127.0.0.1:5672/ refused the login:"
                           " ACCESS_REFUSED")
    assert line.endswith("; check the user and password in ORCH_AMQP_URL")
    assert "wrong" not in line and "rabbitmq-server" not in line


async def test_rabbitmq_vhost_that_does_not_exist_is_named() -> None:
    # Given an AMQP URL naming a vhost the broker does not have
    config = settings(amqp_url="amqp://guest:guest@127.0.0.1:5672/no_such_vhost_xyz")
    # When the start-up checks run
    line = only_line(await check_dependencies(config), "RabbitMQ")
    # Then the line names the vhost and how to create it
    assert line.startswith("error: RabbitMQ at amqp://guest:***@127.0.0.1:5672/no_such_vhost_xyz"
                           " has no vhost no_such_vhost_xyz")
    assert "rabbitmqctl add_vhost no_such_vhost_xyz" in line and "ORCH_AMQP_URL" in line
    assert "rabbitmq-server" not in line


async def test_rabbitmq_on_a_wrong_port_says_it_answers_on_5672() -> None:
    # Given an AMQP URL on a port where nothing listens
    port = free_port()
    config = settings(amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/")
    # When the start-up checks run
    line = only_line(await check_dependencies(config), "RabbitMQ")
    # Then the line says nothing answers there, and that RabbitMQ answers on 5672
    assert line == (f"error: RabbitMQ is not answering at amqp://guest:***@127.0.0.1:{port}/"
                    " (connection refused); RabbitMQ answers on 127.0.0.1:5672:"
                    " check the port in ORCH_AMQP_URL")


# --- Redis (optional: a warning unless required) ---------------------------------------------

async def test_redis_on_a_wrong_port_is_a_warning_that_it_answers_on_6379() -> None:
    # Given a Redis URL on a port where nothing listens
    port = free_port()
    config = settings(redis_url=f"redis://127.0.0.1:{port}/0")
    # When the start-up checks run
    problems = await check_dependencies(config)
    # Then the one line is a warning: not answering, but Redis answers on 6379
    assert problems == [f"warning: Redis is not answering at redis://127.0.0.1:{port}/0"
                        " (connection refused); Redis answers on 127.0.0.1:6379:"
                        " check the port in ORCH_REDIS_URL (continuing: Redis is optional)"]
    # And it is an error when Redis is required
    required = await check_dependencies(config, redis_required=True)
    assert required[0].startswith("error: Redis is not answering at")


@pytest.mark.parametrize(("url", "said"), [
    # A password sent to a server that has none (RESP2 sends a plain AUTH; RESP3's HELLO AUTH
    # to a "nopass" default user succeeds, so that URL has no problem to report)
    ("redis://:wrong@127.0.0.1:6379/0?protocol=2",
     "AUTH <password> called without any password configured"),
    ("redis://no_such_user_xyz:wrong@127.0.0.1:6379/0",
     "invalid username-password pair"),
])
async def test_redis_with_a_wrong_user_or_password_says_the_login_was_refused(
        url: str, said: str) -> None:
    # Given a Redis URL whose credentials the server does not accept
    config = settings(redis_url=url)
    # When the start-up checks run
    line = only_line(await check_dependencies(config), "Redis")
    # Then the warning says the login was refused, in the server's words
    assert line.startswith("warning: Redis at redis://")
    assert f"refused the login: {said}" in line
    assert "check the user and password in ORCH_REDIS_URL" in line
    assert "wrong" not in line and "redis-server" not in line


# --- all right --------------------------------------------------------------------------------

async def test_all_three_right_is_no_problem(database_name: str) -> None:
    # Given the default URLs, with a database of this test's own
    config = settings(database_url=f"postgresql://postgres@127.0.0.1:5432/{database_name}")
    # When the start-up checks run
    problems = await check_dependencies(config, redis_required=True)
    # Then there is nothing to report
    assert problems == []
