"""The ``summarize`` agent and its pure helpers."""

from __future__ import annotations

from typing import Any

import pytest

from agents.builtin.summarize import split_sentences, summarize, summarize_text
from agents.context import LlmEndpoint, TaskContext
from agents.errors import NonRetryableError
from agents.registry import get_agent

pytestmark = pytest.mark.unit

TEXT = (
    "The weather was pleasant on Tuesday. "
    "Solar panels convert sunlight into electricity for homes. "
    "My cousin adopted a small grey cat last spring. "
    "Modern solar panels produce cheap electricity from sunlight. "
    "Lunch featured a tasty sandwich. "
    "Cheap solar electricity lets homes use sunlight instead of coal."
)


def ctx() -> TaskContext:
    return TaskContext(task_id="t1", agent="summarize", attempt=1, max_attempts=3,
                       worker_id="w", llm=LlmEndpoint("http://127.0.0.1:9", "", "m", 1.0))


def test_split_sentences_on_terminal_punctuation() -> None:
    assert split_sentences("It works. Does it?  Yes!\nGreat.") == [
        "It works.", "Does it?", "Yes!", "Great."]


def test_split_sentences_keeps_abbreviations_decimals_and_initials() -> None:
    text = ("Dr. Smith met Mr. Jones at 3.14 p.m. sharp. They ate fruit, e.g. apples "
            "and pears. J. R. R. Tolkien wrote books! Pi is about 3.14. Done?")
    assert split_sentences(text) == [
        "Dr. Smith met Mr. Jones at 3.14 p.m. sharp.",
        "They ate fruit, e.g. apples and pears.",
        "J. R. R. Tolkien wrote books!",
        "Pi is about 3.14.",
        "Done?",
    ]


def test_split_sentences_after_sentence_final_abbreviation() -> None:
    assert split_sentences("We packed tents, stoves, etc. Then we left at 5 p.m. on foot.") == [
        "We packed tents, stoves, etc.", "Then we left at 5 p.m. on foot."]


def test_split_sentences_quotes_blank_lines_and_trailing_text() -> None:
    text = 'He said "stop." Then left.\n\nHeading without stop\nno final period'
    assert split_sentences(text) == [
        'He said "stop."', "Then left.", "Heading without stop no final period"]


def test_summary_picks_the_central_sentences_in_original_order() -> None:
    result = summarize_text(TEXT, 2)
    assert result["selected_indices"] == [1, 3]
    assert result["sentences"] == [
        "Solar panels convert sunlight into electricity for homes.",
        "Modern solar panels produce cheap electricity from sunlight.",
    ]
    assert result["summary"] == " ".join(result["sentences"])
    assert result["sentence_count"] == 6


def test_summary_respects_k_and_keeps_order() -> None:
    three = summarize_text(TEXT, 3)
    assert three["selected_indices"] == [1, 3, 5]  # all on-topic, in text order
    assert three["sentences"][-1].startswith("Cheap solar electricity")
    assert summarize_text(TEXT, 1)["selected_indices"] == [1]


def test_k_larger_than_sentence_count_returns_everything() -> None:
    result = summarize_text("One fact here. Another fact there.", 10)
    assert result["selected_indices"] == [0, 1]
    assert result["summary"] == "One fact here. Another fact there."
    assert result["sentence_count"] == 2


async def test_agent_is_registered_and_defaults_to_three_sentences() -> None:
    spec = get_agent("summarize")
    assert spec is not None and spec.fn is summarize
    result = await summarize({"text": TEXT}, ctx())
    assert len(result["sentences"]) == 3
    assert result == summarize_text(TEXT, 3)


@pytest.mark.parametrize(("payload", "expected"), [
    ("just a string", "input must be an object"),
    ({}, '"text" must be a string, got nothing'),
    ({"text": 42}, '"text" must be a string, got int'),
    ({"text": "   "}, '"text" is empty'),
    ({"text": TEXT, "sentences": 0}, '"sentences" must be a whole number >= 1'),
    ({"text": TEXT, "sentences": "2"}, '"sentences" must be a whole number >= 1'),
    ({"text": TEXT, "sentences": 2.5}, '"sentences" must be a whole number >= 1'),
    ({"text": TEXT, "sentences": True}, '"sentences" must be a whole number >= 1'),
])
async def test_bad_input_is_non_retryable_and_says_what_to_fix(
        payload: Any, expected: str) -> None:
    with pytest.raises(NonRetryableError, match="summarize: ") as info:
        await summarize(payload, ctx())
    assert expected in str(info.value)
