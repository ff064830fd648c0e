"""The retry decision is a pure function: tested without a broker."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from agents.errors import AgentError, NonRetryableError
from agents.retry import GiveUp, Retry, RetryPolicy, decide
from service.broker.topology import DELAY_STEPS_MS, delay_step_ms
from service.domain import result_json

pytestmark = pytest.mark.unit

POLICY = RetryPolicy(max_attempts=5, base_delay_s=1.0, max_delay_s=10.0, jitter=0.0)


@pytest.mark.parametrize(("attempt", "expected_s"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0),
                                                     (5, 10.0), (9, 10.0)])
def test_backoff_doubles_per_attempt_and_is_capped(attempt: int, expected_s: float) -> None:
    assert POLICY.backoff_s(attempt) == expected_s


def test_jitter_only_shortens_the_delay_and_by_at_most_its_fraction() -> None:
    policy = RetryPolicy(base_delay_s=2.0, jitter=0.25)
    rng = random.Random(7)
    delays = [policy.backoff_s(1, rng) for _ in range(500)]
    assert all(1.5 <= d <= 2.0 for d in delays)
    assert max(delays) - min(delays) > 0.4  # spread out, not one value


def test_retryable_error_before_the_last_attempt_is_retried() -> None:
    assert decide(2, 5, AgentError("flaky"), POLICY) == Retry(2.0)


def test_the_last_attempt_gives_up_as_exhausted() -> None:
    assert decide(5, 5, AgentError("flaky"), POLICY) == GiveUp("exhausted")


def test_non_retryable_error_gives_up_at_once() -> None:
    assert decide(1, 5, NonRetryableError("bad input"), POLICY) == GiveUp("non_retryable")


def test_a_policy_can_name_more_non_retryable_types() -> None:
    policy = RetryPolicy(non_retryable=(NonRetryableError, KeyError))
    assert decide(1, 3, KeyError("x"), policy) == GiveUp("non_retryable")
    assert isinstance(decide(1, 3, ValueError("x"), policy), Retry)


@pytest.mark.parametrize(("delay_s", "step_ms"), [(0.0, 125), (0.1, 125), (0.2, 177),
                                                   (1.0, 1000), (1.3, 1000), (1.5, 1414),
                                                   (8.0, 8000), (1e9, 2_896_309)])
def test_delays_round_down_to_a_delay_queue_step(delay_s: float, step_ms: int) -> None:
    assert delay_step_ms(delay_s) == step_ms


def test_delay_steps_are_at_most_41_percent_apart() -> None:
    ratios = [b / a for a, b in itertools.pairwise(DELAY_STEPS_MS)]
    assert max(ratios) < 1.42


def test_a_result_with_no_json_form_fails_the_task_without_retrying() -> None:
    assert json.loads(result_json({"score": math.nan, "tags": ("a", "b")})) == {
        "score": None, "tags": ["a", "b"]}
    with pytest.raises(NonRetryableError, match=r"result \(object\) cannot be stored") as err:
        result_json(object())
    assert decide(1, 5, err.value, POLICY) == GiveUp("non_retryable")
