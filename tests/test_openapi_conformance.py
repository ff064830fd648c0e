"""The API against its own OpenAPI document: schemathesis runs every check (``--checks all``)
with a fixed seed and a bounded number of examples per operation against a real API (its own
PostgreSQL database, RabbitMQ vhost and Redis prefix, a worker for ``echo`` and ``fail``), with
an admin key, and finds no 5xx and no conformance failure.

Nothing is excluded (the examples phase finds nothing to run: the document has no examples).
One thing is steered (``tests/openapi_conformance_hooks.py``): the run learns key names from
``GET /v1/admin/keys`` and would revoke or rotate its own key, after which every request is a
401 and the run tests nothing; that one name is swapped for an unknown one (a 404) just before
such a request. Keys the run creates itself are revoked and rotated freely.

Limits are raised so that the run's own traffic is not answered 429 (the limits have tests of
their own: tests/test_rate_limits.py); ``ignored_auth`` sends bad keys on purpose, so the
failed-authentication limit is raised too. Callbacks may call private addresses (the document
cannot say which addresses a deployment refuses). A failure prints schemathesis' report: each
failure with its check, the answer and a ``curl`` that reproduces it (the seed is fixed)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.services import Env, create_key, start_agent, start_api

pytestmark = pytest.mark.integration

OWN_ENV = {"rate_limit": "100000/s", "rate_limit_burst": "100000",
           "auth_failure_limit": "100000/s", "callback_allow_private": "true"}
SEED = 1
MAX_EXAMPLES = 100
"""Per operation and phase: about 1,500 requests, 30 to 40 s here (two busy cores)."""
HOOKS = Path(__file__).with_name("openapi_conformance_hooks.py")


def schemathesis(api_url: str, key: str, key_name: str, workdir: Path,
                 timeout_s: float) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{api_url}/schema/openapi.json",
               "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
               "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "1",
               "--generation-database", "none", "--no-color",
               "--header", f"Authorization: Bearer {key}"]
    environ = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS),
               "ORCH_CONFORMANCE_KEY_NAME": key_name}
    return subprocess.run(command, cwd=workdir, env=environ, capture_output=True, text=True,
                          timeout=timeout_s)


def report(output: str) -> str:
    """The part of schemathesis' output that says what failed (all of it if it has none)."""
    start = output.find(" FAILURES ")
    return output[start:] if start >= 0 else output


@pytest.mark.timeout(300)
def test_the_api_conforms_to_its_openapi_document(own_env: Env, tmp_path: Path) -> None:
    # Given an API with a worker, and an admin key whose name the run must not revoke
    api_url = start_api(own_env)
    start_agent(own_env, "--agents", "echo,fail", "--concurrency", "4")
    key_name = f"conformance-{uuid.uuid4().hex[:8]}"
    key = create_key(own_env, key_name, "tasks:read,tasks:write,tasks:priority,admin",
                     tenant="conformance")
    # When schemathesis runs every check against the served document
    started = time.monotonic()
    run = schemathesis(api_url, key, key_name, tmp_path, timeout_s=270)
    took = time.monotonic() - started
    output = run.stdout + run.stderr
    # Then nothing failed, and the run was not locked out of the API
    assert run.returncode == 0, report(output)
    assert "Authentication failed" not in output, report(output)
    assert " passed" in output and f"Seed: {SEED}" in output, output
    summary = next((line.strip() for line in output.splitlines() if "generated" in line), "")
    print(f"\nschemathesis, every check, seed {SEED}, {MAX_EXAMPLES} examples: {summary}"
          f" in {took:.0f} s")
