"""JSON values in the form PostgreSQL's ``jsonb`` keeps them: the one form in which a task's
input is hashed, stored, sized and read back, so that a valid input never looks corrupted.

``jsonb`` parses every number as ``numeric`` and writes it back in plain decimal notation with
the digits it was given (found against PostgreSQL 15; ``tests/test_canonical_json.py`` asserts
them on the real server):

- exponents are written out: ``1e16`` -> ``10000000000000000``, ``1.5e-7`` -> ``0.00000015``,
  ``1e308`` -> 309 digits, ``5e-324`` -> ``0.``, 323 zeros and ``5`` (326 characters);
- the scale is the digits after the point minus the exponent, at least 0: with none left the
  number is an integer (``1.5e16`` -> ``15000000000000000``, ``0.1e1`` -> ``1``); otherwise
  it keeps its digits, trailing zeros too (``1.0``, ``1.50``, ``10.0e-1`` -> ``1.00``);
- zero has no sign: ``-0`` -> ``0``, ``-0.0`` -> ``0.0``;
- integers are exact at any size up to 131072 digits ("value overflows numeric format");
- text may not hold ``\\u0000`` ("unsupported Unicode escape sequence") or a lone surrogate;
- of duplicate keys the last one is kept, and keys are reordered (shorter ones first).

psycopg hands ``jsonb`` to Python through ``json.loads``: a number with a point becomes the same
float (the digits are its shortest repr), one without an int. So a float comes back unchanged,
except -0.0 (as 0.0) and every float from 1e16 up (all integral, written with an exponent): as
the int its digits spell, 1e23 as 10**23 and not ``int(1e23)`` (99999999999999991611392).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import partial
from typing import Any, NamedTuple

import msgspec

__all__ = ["StoredJson", "canonical", "canonical_bytes", "stored_json"]

_FIRST_WITH_EXPONENT = 1e16
"""Floats from here up are written with an exponent (msgspec and ``repr``) and are integral."""
_INFINITY = float("inf")
_SMALL = 1e-4
"""Floats below this may be written with an exponent that jsonb writes out in full."""

_encode = msgspec.json.Encoder().encode
_dumps = partial(json.dumps, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                 allow_nan=False)

_CHANGED = re.compile(rb"[\[:,](?:-?[0-9]+(?:\.[0-9]+)?e\+?[0-9]|-0\.0[,\]}])")
"""A number jsonb hands back as another value (from 1e16 up, or -0.0) inside an array or
object of compact JSON (after ``[``, ``:`` or ``,``): a string holding text like it
(``"id-4e1f"``) only costs the full walk."""
_REWRITTEN = re.compile(rb"[\[:,](?:-?[0-9]+(?:\.[0-9]+)?e|-0\.0[,\]}])")
"""Those, and the small numbers jsonb writes out longer (``1.5e-7``: ``0.00000015``)."""
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_MANTISSA_CHARS = 32
"""A float's shortest form has at most 17 digits, a sign and a point before its ``e``."""


def _rewritten(value: Any, text: bytes, numbers: re.Pattern[bytes]) -> bool:
    """Whether ``text``, the compact JSON of ``value``, holds ``numbers``. The search for a
    digit before an ``e``, or for ``-0.0``, runs at C speed; the regular expression only from
    the first one found."""
    if isinstance(value, float):
        return True
    hint = text.translate(_DIGITS_AS_ZERO).find(b"0e")
    if hint < 0:
        hint = text.find(b"-0.0")
        if hint < 0:
            return False
    return numbers.search(text, max(0, hint - _MANTISSA_CHARS)) is not None


class StoredJson(NamedTuple):
    """A value ready to store in a ``jsonb`` column."""

    value: Any
    """In canonical form: equal to what a read of the column returns."""
    text: str
    """Its JSON text, what is sent to PostgreSQL."""
    size: int
    """Bytes of JSON PostgreSQL hands back for it: every number written out in full (without
    the blank jsonb puts after each ``,`` and ``:``)."""


def canonical(value: Any) -> Any:
    """``value`` as a read of a ``jsonb`` column returns it (see the module docstring): lists
    for tuples, ``None`` for NaN and the infinities (they have no JSON form)."""
    return _walk(value, None)


def canonical_bytes(value: Any) -> bytes:
    """The canonical form of ``value`` as UTF-8 JSON with sorted keys: what the input checksum
    hashes. The same bytes as before canonical forms existed for a value jsonb keeps as it is."""
    try:
        text = _dumps(value).encode()
    except ValueError:  # NaN or an infinity
        return _dumps(canonical(value)).encode()
    return _dumps(canonical(value)).encode() if _rewritten(value, text, _CHANGED) else text


def stored_json(value: Any) -> StoredJson:
    """``value`` ready to store: its canonical form, JSON text and stored size. Any value
    msgspec encodes (results: structs, dataclasses, datetimes, ...); ``TypeError`` otherwise."""
    encoded = _encode(value)
    if not _rewritten(value, encoded, _REWRITTEN):  # jsonb writes it as it is: the fast path
        return StoredJson(value, encoded.decode(), len(encoded))
    small: list[float] = []
    value = _walk(msgspec.to_builtins(value, str_keys=True), small)
    encoded = _encode(value)
    return StoredJson(value, encoded.decode(), len(encoded) + sum(map(_written_out, small)))


def _walk(value: Any, small: list[float] | None) -> Any:
    """The canonical form of ``value``; collects into ``small`` the floats that jsonb may
    write out longer than msgspec writes them."""
    if isinstance(value, float):
        if value != value or value in (_INFINITY, -_INFINITY):
            return None
        if value == 0:
            return 0.0  # -0.0 too
        magnitude = abs(value)
        if magnitude >= _FIRST_WITH_EXPONENT:
            return int(Decimal(repr(value)))  # the digits jsonb keeps, not the binary value
        if magnitude < _SMALL and small is not None:
            small.append(value)
        return value
    if isinstance(value, dict):
        return {key: _walk(item, small) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(item, small) for item in value]
    return value



def _written_out(number: float) -> int:
    """How many bytes longer jsonb writes ``number`` than msgspec (``5e-324``: 320)."""
    written = _encode(number)
    if b"e" not in written:
        return 0
    return len(format(Decimal(repr(number)), "f")) - len(written)
