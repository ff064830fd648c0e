"""Token and cost accounting: the fake model server's usage, priced at ORCH_LLM_PRICES, lands on
the task and in the agent's metrics, and failed calls are counted by kind."""

from __future__ import annotations

import asyncio

import pytest

from operations.drills.fake_llm import FakeLLM
from service.pricing import Price, PriceTable, parse_prices
from tests.services import Env, api_client, start_agent, start_api
from tests.tasks import submit, wait_for
from tests.test_metrics import scrape, value

PRICES = "gpt-4o-mini=1000/2000,other=1/1"
"""USD per million tokens in/out: large, so a handful of tokens costs a readable amount."""


@pytest.mark.unit
def test_a_price_table_is_read_and_prices_each_call() -> None:
    table = PriceTable(parse_prices(PRICES))
    assert table.prices["gpt-4o-mini"] == Price(1000, 2000)
    assert table.cost_usd("gpt-4o-mini", 3, 4) == pytest.approx(0.011)
    assert table.cost_usd("unpriced", 1000, 1000) == 0.0


@pytest.mark.unit
@pytest.mark.parametrize("text", ["gpt=1", "gpt=a/b", "=1/2", "gpt=-1/2", "gpt=nan/1"])
def test_a_price_that_cannot_be_read_names_the_setting(text: str) -> None:
    with pytest.raises(ValueError, match="ORCH_LLM_PRICES"):
        parse_prices(text)


@pytest.mark.integration
async def test_a_tasks_tokens_and_cost_match_the_usage_and_the_metrics(
        own_env: Env, fake_llm: FakeLLM) -> None:
    url = start_api(own_env)
    worker = start_agent(own_env, "--agents", "llm", environ=own_env.with_vars(
        llm_base_url=fake_llm.base_url, llm_prices=PRICES, retry_base_delay_s="0.05"))
    async with api_client(own_env, url) as client:
        fake_llm.fail_next(500)  # the first attempt fails on the server; counted, no tokens
        fake_llm.fail_next(429)  # (no Retry-After: an ordinary retry)
        accepted = await submit(client, "llm", {"prompt": "one two three"}, max_attempts=3)
        done = await wait_for(client, accepted["id"], timeout_s=30)
        assert done["status"] == "succeeded" and done["attempts"] == 3
        # the fake counts words: 3 in; "echo: one two three" out, 4
        assert (done["tokens_in"], done["tokens_out"]) == (3, 4)
        assert done["cost_usd"] == pytest.approx((3 * 1000 + 4 * 2000) / 1e6)
        await asyncio.sleep(0.2)
        samples, _ = scrape(worker.metrics_url())
    model = {"agent": "llm", "model": "gpt-4o-mini"}
    assert value(samples, "orchestrator_model_cost_usd_total", **model) == pytest.approx(0.011)
    assert value(samples, "orchestrator_model_input_tokens_total", **model) == 3
    assert value(samples, "orchestrator_model_calls_total", **model) == 3
    for kind, count in (("server_error", 1), ("rate_limited", 1), ("timeout", 0)):
        assert value(samples, "orchestrator_model_errors_total", **model, kind=kind) == count
