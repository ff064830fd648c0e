"""The ``summarize`` agent: extractive summary by word frequency, no network, no NLP packages."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from agents.context import TaskContext
from agents.errors import NonRetryableError
from agents.registry import agent

ABBREVIATIONS = frozenset({
    "e.g.", "i.e.", "vs.", "cf.", "al.", "approx.", "fig.", "no.", "nos.",
    "mr.", "mrs.", "ms.", "dr.", "prof.", "sr.", "jr.", "st.", "mt.", "gen.", "col.",
    "inc.", "ltd.", "co.", "corp.", "dept.", "jan.", "feb.", "mar.", "apr.", "aug.",
    "sep.", "sept.", "oct.", "nov.", "dec.", "u.s.", "u.k.",
})

_STOPWORD_TEXT = """
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each either few for
from further had has have having he her here hers herself him himself his how however i if in
into is it its itself just me more most my myself no nor not now of off on once only or other
our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up upon very was we
were what when where which while who whom why will with would yet you your yours yourself
yourselves it's don't doesn't isn't aren't wasn't weren't can't won't i'm i've we're they're
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Sentence-ending punctuation (plus closing quotes/brackets) followed by whitespace or the end.
_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s|$)")
_PARAGRAPH = re.compile(r"\n\s*\n")
_WORD = re.compile(r"[a-z0-9]+(?:['\u2019.][a-z0-9]+)*")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences at ``.``, ``!``, ``?`` and blank lines.

    A period does not end a sentence after a known abbreviation ("e.g.", "Dr."), after a
    single-letter initial ("J."), or when the next word starts in lower case (so "etc." and
    "p.m." end a sentence only before a capital); decimals
    such as 3.14 never split because no whitespace follows the point.
    """
    sentences: list[str] = []
    for block in _PARAGRAPH.split(text):
        start = 0
        for match in _END.finditer(block):
            if match.group().rstrip("\"'\u201d\u2019)]") == "." and not _ends_sentence(
                    block, start, match):
                continue
            _append(sentences, block[start:match.end()])
            start = match.end()
        _append(sentences, block[start:])
    return sentences


def _ends_sentence(block: str, start: int, match: re.Match[str]) -> bool:
    word = block[start:match.start() + 1].split()[-1].lstrip("\"'(\u201c\u2018[").lower()
    if word in ABBREVIATIONS or re.fullmatch(r"[a-z]\.", word):
        return False
    following = block[match.end():].lstrip()
    return not following or not following[0].islower()


def _append(sentences: list[str], chunk: str) -> None:
    sentence = " ".join(chunk.split())
    if sentence:
        sentences.append(sentence)


def content_words(sentence: str) -> list[str]:
    """Lower-cased words of ``sentence`` without punctuation and stopwords."""
    return [w for w in _WORD.findall(sentence.lower().replace("\u2019", "'"))
            if w not in STOPWORDS]


def summarize_text(text: str, k: int = 3, lead_bonus: float = 0.1) -> dict[str, Any]:
    """Pick the ``k`` sentences whose content words are most frequent in ``text``.

    Each word's frequency is normalised by the most frequent word; a sentence scores the
    mean over its content words, the first sentence gets ``lead_bonus`` (relative) on top,
    and ties go to the earlier sentence. The picked sentences keep their original order.
    """
    sentences = split_sentences(text)
    words = [content_words(s) for s in sentences]
    counts = Counter(w for ws in words for w in ws)
    top = max(counts.values(), default=1)
    scores = [sum(counts[w] / top for w in ws) / len(ws) if ws else 0.0 for ws in words]
    if scores:
        scores[0] *= 1.0 + lead_bonus
    ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
    chosen = sorted(ranked[:k])
    picked = [sentences[i] for i in chosen]
    return {"summary": " ".join(picked), "sentences": picked,
            "sentence_count": len(sentences), "selected_indices": chosen}


@agent("summarize")
async def summarize(payload: Any, ctx: TaskContext) -> dict[str, Any]:
    """Extractive summary: ``{"text": str, "sentences": k=3}`` -> the k most central sentences."""
    if not isinstance(payload, dict):
        raise NonRetryableError(
            f'summarize: input must be an object like {{"text": "...", "sentences": 3}}, '
            f"got {type(payload).__name__}")
    text = payload.get("text")
    if not isinstance(text, str):
        got = "nothing" if text is None else type(text).__name__
        raise NonRetryableError(f'summarize: "text" must be a string, got {got}')
    if not text.strip():
        raise NonRetryableError('summarize: "text" is empty; pass the text to summarize')
    k = payload.get("sentences", 3)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise NonRetryableError(
            f'summarize: "sentences" must be a whole number >= 1 (default 3), got '
            f"{_kind(k)}")
    return summarize_text(text, k)


def _kind(value: Any) -> str:
    """What a bad input value is, without the value (an error text may be logged and stored)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return "a number below 1"
    return type(value).__name__
