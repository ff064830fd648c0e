"""Durations written as ``30s``, ``15m``, ``12h``, ``7d``, ``2w`` (or plain seconds)."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_s(text: str) -> float:
    """``"30m"`` -> 1800.0; a clear ``ValueError`` for anything else."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw]?)", text.strip())
    if not found:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 12h, 7d)")
    return float(found.group(1)) * _UNITS[found.group(2) or "s"]
