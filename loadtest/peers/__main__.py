"""Run the peer benchmark: every system, interleaved, ``--rounds`` times, on ``--tasks`` no-op
tasks each; prints each system's tasks/s (median and per round), the ratios of this project to
each, and CPU microseconds per task by process group.

    pip install -e '.[peers]'
    python -m loadtest.peers --tasks 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from loadtest.peers.cpu import GROUPS
from loadtest.peers.systems import SYSTEMS, Round


def summary(rounds: list[Round]) -> dict[str, Any]:
    """Per system: the median rate, every round's, CPU per task; ratios to this project."""
    out: dict[str, Any] = {}
    for system in dict.fromkeys(r.system for r in rounds):
        mine = [r for r in rounds if r.system == system]
        cpu = {g: statistics.median(r.cpu_us.get(g, 0.0) for r in mine) for g in GROUPS}
        out[system] = {"tasks_per_s": round(statistics.median(r.rate for r in mine), 1),
                       "rounds": [round(r.rate, 1) for r in mine],
                       "cpu_us_per_task": {g: round(v, 1) for g, v in cpu.items() if v}}
    if "orchestrator" in out:
        ours = out["orchestrator"]["tasks_per_s"]
        for figures in out.values():
            figures["orchestrator_ratio"] = round(ours / figures["tasks_per_s"], 3)
    return out


def table(result: dict[str, Any]) -> str:
    lines = [f"{'system':16} {'tasks/s':>8} {'rounds':24} {'ours/it':>8}  cpu us/task by group"]
    for system, f in result.items():
        cpu = ", ".join(f"{g} {v:g}" for g, v in f["cpu_us_per_task"].items())
        lines.append(f"{system:16} {f['tasks_per_s']:8.1f} {f['rounds']!s:24}"
                     f" {f.get('orchestrator_ratio', float('nan')):8.3f}  {cpu}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000, help="tasks per system and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, systems interleaved")
    parser.add_argument("--systems", default=",".join(s.name for s in SYSTEMS),
                        help="which, comma-separated (default: all)")
    parser.add_argument("--json", action="store_true", help="the summary as JSON")
    args = parser.parse_args(argv)
    chosen = args.systems.split(",")
    unknown = sorted(set(chosen) - {s.name for s in SYSTEMS})
    if unknown:
        parser.error(f"unknown systems {unknown}; known: {[s.name for s in SYSTEMS]}")
    systems = [s for s in SYSTEMS if s.name in chosen]
    rounds: list[Round] = []
    for number in range(1, args.rounds + 1):
        for system in systems:
            done = system.run(args.tasks)
            rounds.append(done)
            print(f"round {number}: {system.name} {done.rate:.1f} tasks/s", file=sys.stderr,
                  flush=True)
    result = summary(rounds)
    if args.json:
        print(json.dumps({"tasks": args.tasks, "rounds": args.rounds, "systems": result,
                          "described": {s.name: s.description for s in systems}}, indent=2))
    else:
        for system in systems:
            print(f"{system.name}: {system.description}")
        print()
        print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
