"""``orchestrator drill list`` and ``orchestrator drill run NAME... | --all``."""

from __future__ import annotations

import json
import signal
import sys
import time
from types import FrameType

from operations.drills.drills import BY_NAME, DRILLS
from operations.drills.runner import Outcome, as_json, run_drills, table
from service.settings import Settings


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def list_drills(as_machine: bool) -> int:
    if as_machine:
        print(json.dumps([{"name": d.name, "scenario": d.scenario.number,
                           "title": d.scenario.title, "alerts": list(d.alerts),
                           "fault": d.what} for d in DRILLS], indent=2))
        return 0
    for d in DRILLS:
        print(f"{d.name:20} {d.scenario.number:>2}. {d.scenario.title:38} {', '.join(d.alerts)}"
              f"\n{'':24}{d.what}")
    return 0


def run(settings: Settings, names: list[str], run_all: bool, parallel: int,
        as_machine: bool) -> int:
    """Exit 0 when every drill passed, 1 otherwise, 2 for an unknown drill name."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not (names or run_all):
        print(f"error: {'unknown drill ' + ', '.join(unknown) if unknown else 'name drills'}"
              f" (orchestrator drill list), or pass --all", flush=True)
        return 2
    chosen = list(DRILLS) if run_all else [BY_NAME[n] for n in names]
    root = settings.state_path / "drills" / time.strftime("%Y%m%d-%H%M%S")
    print(f"running {len(chosen)} drills on {parallel} drill stacks of their own"
          f" (logs and the report in {root})", file=sys.stderr if as_machine else sys.stdout,
          flush=True)

    def progress(outcome: Outcome) -> None:
        if not as_machine:
            print(f"  {outcome.drill}: {'pass' if outcome.passed else 'FAIL'}", flush=True)

    signal.signal(signal.SIGTERM, _stop)  # stops every drill stack, as Ctrl-C does
    outcomes = run_drills(chosen, root, parallel=parallel, on_result=progress)
    (root / "report.txt").write_text(table(outcomes) + "\n")
    (root / "report.json").write_text(json.dumps(as_json(outcomes), indent=2) + "\n")
    print(json.dumps(as_json(outcomes), indent=2) if as_machine else table(outcomes))
    return 0 if outcomes and all(o.passed for o in outcomes) else 1
