"""Request bodies that are not ``application/json`` get a 415, and bodies nested deeper than
``ORCH_MAX_JSON_DEPTH`` a 400, before any decoder sees them: msgspec and ``json`` recurse per
level and fail with ``RecursionError`` (a 500, an ERROR line and a 5xx alert) near a thousand
levels.

The body is read once, within the body size limit, and kept for the handler (Litestar caches
it in the scope). Every step runs at C speed, none loops over bytes in Python: a body with at
most as many brackets as the limit costs two ``bytes.count``; one with more, a ``translate`` to
its quotes and brackets, a split that drops what is inside strings, then passes of
``bytes.replace`` that remove the innermost pairs while runs of brackets are short, and one scan
of the run lengths once they are long.
"""

from __future__ import annotations

import re
from itertools import accumulate
from operator import sub
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["JsonDepthLimit", "nesting_exceeds"]

_NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_MARKS = bytes(b for b in range(256) if b not in b'"[]{}')
_RUNS = re.compile(rb"\[+|\]+")
_RUN_LENGTH = 8
"""Runs this long on average are followed one by one; shorter ones are removed in passes."""


class JsonDepthLimit(ASGIMiddleware):
    """Answer 400 to a request whose body nests arrays and objects deeper than ``max_depth``."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     next_app: ASGIApp) -> None:
        if scope["type"] == ScopeType.HTTP and scope["method"] not in _NO_BODY:
            request = Request[Any, Any, Any](scope, receive)
            body = await request.body()  # kept for the handler
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if body and not (media == "application/json" or media.endswith("+json")):
                raise HTTPException(
                    status_code=415, detail=f"request body must be JSON: send it with"
                    f" 'Content-Type: application/json' (got {media or 'none'!r})")
            if nesting_exceeds(body, self.max_depth):
                raise ClientException(
                    f"request body has nesting deeper than {self.max_depth} levels of arrays"
                    " and objects (ORCH_MAX_JSON_DEPTH on the server); send flatter JSON, or"
                    " the deep part as a string")
        await next_app(scope, receive, send)


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
