"""An agent's result larger than ``ORCH_MAX_RESULT_BYTES`` as stored fails its task at once, with
an error that names the size and the limit, instead of filling the database."""

from __future__ import annotations

import httpx
import pytest

from tests.services import Env, create_key, start_agent, start_api
from tests.tasks import submit, wait_for

pytestmark = pytest.mark.integration

LIMIT = 2_000
OWN_ENV = {"max_result_bytes": str(LIMIT)}
"""The settings of this module's ``own_env`` (see conftest): a worker with a small result cap."""


async def test_a_result_above_the_cap_fails_the_task_once_naming_size_and_limit(
        own_env: Env) -> None:
    # Given an API and an echo worker whose results may be at most 2,000 bytes
    url = start_api(own_env)
    start_agent(own_env, "--agents", "echo")
    async with httpx.AsyncClient(base_url=url, timeout=15, headers={
            "Authorization": f"Bearer {create_key(own_env)}"}) as client:
        # When one task returns 5,011 bytes, another 10 numbers that are 3,101 bytes stored
        # (1e308 is written out as 309 digits), and a third a small result
        big = await submit(client, "echo", {"text": "x" * 5_000}, max_attempts=3)
        grown = await submit(client, "echo", [1e308] * 10, max_attempts=3)
        small = await submit(client, "echo", {"text": "x" * 100}, max_attempts=3)
        big_done, grown_done, small_done = [await wait_for(client, t["id"])
                                            for t in (big, grown, small)]
    # Then the large ones are dead after one attempt, saying why
    for done, size in ((big_done, 5_011), (grown_done, 3_101)):
        assert done["status"] == "dead" and done["attempts"] == 1, done
        assert done["result"] is None
        assert (f"result is {size} bytes, above the limit of {LIMIT} bytes"
                " (ORCH_MAX_RESULT_BYTES)") in done["error"], done["error"]
    # and the small one succeeds
    assert small_done["status"] == "succeeded"
    assert small_done["result"] == {"text": "x" * 100}


async def test_a_result_nested_deeper_than_the_limit_fails_the_task_once(own_env: Env) -> None:
    """Every client reading a result decodes it: a worker refuses to store one nested deeper
    than ORCH_MAX_JSON_DEPTH (here the worker's is 3, the API's the default)."""
    url = start_api(own_env)
    start_agent(own_env, "--agents", "echo", environ=own_env.with_vars(max_json_depth="3"))
    async with httpx.AsyncClient(base_url=url, timeout=15, headers={
            "Authorization": f"Bearer {create_key(own_env)}"}) as client:
        deep = await submit(client, "echo", [[[["four levels"]]]], max_attempts=3)
        flat = await submit(client, "echo", [["two levels"]], max_attempts=3)
        deep_done, flat_done = [await wait_for(client, t["id"]) for t in (deep, flat)]
    assert deep_done["status"] == "dead" and deep_done["attempts"] == 1, deep_done
    assert "nests arrays and objects deeper than 3 levels" in deep_done["error"]
    assert flat_done["status"] == "succeeded" and flat_done["result"] == [["two levels"]]
