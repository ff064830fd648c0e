"""``orchestrator doctor``: the diagnosis, printed for people or as JSON."""

from __future__ import annotations

import asyncio
import json

from operations.doctor.report import as_json, diagnose, human
from service.settings import Settings


def run_doctor(settings: Settings, as_machine: bool) -> int:
    """Exit 0 when all is clear, 1 with findings."""
    report = asyncio.run(diagnose(settings))
    print(json.dumps(as_json(report), indent=2) if as_machine else human(report))
    return report.exit_code
