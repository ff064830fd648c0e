"""A sustained run: a constant rate for minutes against a deployment of its own (the API and one
echo agent, as ``orchestrator up`` starts them), with the load generator's report and plots
written to ``--report-dir``; then, per minute, the queue wait p99 and where tasks waited (outbox,
queue and prefetch), which shows a standing backlog as a p99 that climbs.

    python -m loadtest.soak --rate 300 --duration 600 --report-dir soak-report
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from loadtest.deployment import own_deployment
from service.ports import free_port
from service.settings import Settings


def per_minute(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-second rows folded into minutes: completions and the worst queue-wait p99."""
    minutes: dict[int, dict[str, Any]] = {}
    for row in series:
        minute = minutes.setdefault(row["second"] // 60, {"completed": 0, "queue_wait_p99_ms": 0.0})
        minute["completed"] += row["completed"]
        minute["queue_wait_p99_ms"] = max(minute["queue_wait_p99_ms"],
                                          row.get("queue_wait_p99_ms") or 0.0)
    return [{"minute": m, **v} for m, v in sorted(minutes.items())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, required=True, help="tasks/s, constant")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--report-dir", type=Path, required=True)
    parser.add_argument("--track", type=float, default=0.2,
                        help="fraction of tasks followed to their end")
    parser.add_argument("--api-workers", type=int, default=1)
    args = parser.parse_args(argv)
    with own_deployment(Settings.from_env(), free_port(), agents="echo",
                        api_workers=args.api_workers) as deployment:
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", "loadtest", "--url", deployment.url,
             "--api-key", deployment.key, "--rate", str(args.rate), "--duration",
             str(args.duration), "--track", str(args.track), "--quiet",
             "--report-dir", str(args.report_dir)], env=os.environ.copy())
    report = json.loads((args.report_dir / "report.json").read_text())
    latency = report["latency_ms"]
    print(f"\n{'wait (ms)':<44}{'p50':>10}{'p99':>10}{'max':>10}")
    for name, title in (("queue_wait", "queue wait (created to started)"),
                        ("outbox_wait", "  in the outbox"),
                        ("broker_wait", "  in the queue and prefetch"),
                        ("end_to_end", "end to end")):
        row = latency[name]
        print(f"{title:<44}{row['p50_ms']!s:>10}{row['p99_ms']!s:>10}{row['max_ms']!s:>10}")
    print(f"\n{'minute':<8}{'completed':>10}{'queue wait p99 (ms)':>22}")
    for minute in per_minute(report["series"]):
        print(f"{minute['minute']:<8}{minute['completed']:>10}{minute['queue_wait_p99_ms']:>22.1f}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
