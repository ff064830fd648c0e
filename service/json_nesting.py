"""How deeply JSON text nests arrays and objects, measured at C speed (no loop over bytes in
Python): a text with at most as many brackets as the limit costs two ``bytes.count``; one with
more, a ``translate`` to its quotes and brackets, a split that drops what is inside strings,
then passes of ``bytes.replace`` that remove the innermost pairs while runs of brackets are
short, and one scan of the run lengths once they are long. Request bodies (the API) and agent
results (the worker) are checked with it."""

from __future__ import annotations

import re
from itertools import accumulate
from operator import sub

_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_MARKS = bytes(b for b in range(256) if b not in b'"[]{}')
_RUNS = re.compile(rb"\[+|\]+")
_RUN_LENGTH = 8
"""Runs this long on average are followed one by one; shorter ones are removed in passes."""


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON ``body`` has more than ``limit`` arrays and objects open at once at some
    point (brackets inside strings do not count; unclosed ones do; a stray close is ignored)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    if b"\\" in body:  # escaped backslashes, then escaped quotes: no quote is escaped after
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = body.translate(_SQUARE, _NOT_MARKS)  # only quotes and brackets, all made [ and ]
    if b'"' in marks:  # keep every other piece between quotes: what is outside strings
        # (dropping adjacent quotes first leaves each bracket inside or outside as it was)
        marks = b"".join(marks.replace(b'""', b"").split(b'"')[::2])
    if marks.count(b"[") <= limit:
        return False
    return _deeper(marks, limit)


def _deeper(brackets: bytes, limit: int) -> bool:
    """``nesting_exceeds`` for a string of ``[`` and ``]``.

    A pass that removes the innermost pairs (``[]``) lowers the depth by exactly one once
    whatever is left open is closed at the end: the deepest points are all such pairs. Passes
    shrink strings of short runs fast; long runs are followed one run at a time instead. With a
    stray ``]`` (invalid JSON: the decoder stops there) the answer errs towards "too deep".
    """
    rest = brackets + b"]" * max(0, 2 * brackets.count(b"[") - len(brackets))
    passes = 0
    while b"[" in rest:
        if passes > limit:
            return True
        pairs = rest.count(b"[]")
        if pairs * _RUN_LENGTH <= len(rest):  # few, long runs
            return passes + _deepest(rest) > limit
        rest = rest.replace(b"[]", b"")
        passes += 1
    return passes > limit


def _deepest(brackets: bytes) -> int:
    """The deepest point of ``brackets``, run by run (C-speed iterators over the run lengths)."""
    runs = list(map(len, _RUNS.findall(brackets)))
    starts_closed = brackets.startswith(b"]")
    opened, closed = runs[starts_closed::2], runs[not starts_closed::2]
    closed_before = accumulate(closed) if starts_closed else accumulate(closed, initial=0)
    return max(0, max(map(sub, accumulate(opened), closed_before), default=0))
