"""The last capacity ``orchestrator loadtest --find-max`` measured, kept in the state folder
(``capacity.json``) for the shift report's headroom (peak rate seen vs this)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

FILE = "capacity.json"


def record_capacity(state_dir: str | Path, max_rate_held: float, stage_s: float,
                    url: str) -> Path:
    path = Path(state_dir) / FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"max_rate_held": max_rate_held, "stage_s": stage_s,
                                "url": url, "measured_at": time.time()}) + "\n")
    return path


def last_capacity(state_dir: str | Path) -> dict[str, Any] | None:
    """What the last search found, or ``None`` when none ran here (or the file is unreadable)."""
    try:
        found = json.loads((Path(state_dir) / FILE).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and "max_rate_held" in found else None
