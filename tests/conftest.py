"""Shared fixtures: one isolated environment with an API and a worker for the session; every
test is marked ``unit`` (no service, process or network) or ``integration``."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from loguru import logger

from operations.drills.fake_llm import FakeLLM, running_fake_llm
from tests.services import Env, Proc, create_env, create_key, destroy_env, start_agent, start_api

# The session worker serves every agent but ``sleep``: tests that need a held task use ``sleep``
# with a worker of their own (or none, to keep a task queued).
SESSION_AGENTS = "echo,fail,summarize,llm"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Whatever a test configures of loguru and the standard logging is undone after it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logger.remove()
    logger.configure(patcher=None)
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("orchestrator-logs")


@pytest.fixture(scope="session")
def env(logs_dir: Path) -> Iterator[Env]:
    environment = create_env(logs_dir)
    yield environment
    destroy_env(environment)


@pytest.fixture
def own_env(logs_dir: Path, request: pytest.FixtureRequest) -> Iterator[Env]:
    """An environment of the test's own; a module tunes it with ``OWN_ENV`` (settings named as
    their variables without the prefix)."""
    environment = create_env(logs_dir, **getattr(request.module, "OWN_ENV", {}))
    yield environment
    destroy_env(environment)


@pytest.fixture(scope="session")
def api_url(env: Env) -> str:
    return start_api(env)


@pytest.fixture(scope="session")
def api_key(env: Env, api_url: str) -> str:
    return create_key(env)


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    """A local server speaking the OpenAI chat-completions protocol (the only faked SaaS)."""
    with running_fake_llm() as fake:
        yield fake


@pytest.fixture(scope="session")
def worker(env: Env, api_url: str, fake_llm: FakeLLM) -> Proc:
    return start_agent(env, "--agents", SESSION_AGENTS, "--concurrency", "8",
                environ=env.with_vars(llm_base_url=fake_llm.base_url, llm_api_key="sk-test"))


@pytest.fixture
async def client(api_url: str, api_key: str, worker: Proc) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=15,
                                 headers={"Authorization": f"Bearer {api_key}"}) as http:
        yield http


MARKS = ("unit", "integration")
SERVICE_FIXTURES = {"logs_dir", "env", "api_url", "api_key", "worker", "client"}
"""The fixtures that start services: a ``unit`` test may use none of them."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test says which kind it is, so ``pytest -m unit`` runs without any service."""
    unmarked = [item.nodeid for item in items
                if sum(1 for mark in MARKS if item.get_closest_marker(mark)) != 1]
    if unmarked:
        raise pytest.UsageError(f"mark each test with exactly one of {MARKS}: {unmarked}")
    wrong = [item.nodeid for item in items if item.get_closest_marker("unit")
             and SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if wrong:
        raise pytest.UsageError(f"unit tests that start services (mark them integration): {wrong}")
