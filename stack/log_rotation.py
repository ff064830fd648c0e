"""Size-based rotation for the logs of the stack's own children (Prometheus, Alertmanager, the
page inbox), which write to their standard output: a thread copies that pipe into ``NAME.log``
and, past ``max_bytes``, moves it to ``NAME.log.1`` (keeping ``keep`` old files)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import IO

MAX_BYTES = 10 * 1024 * 1024
KEEP = 2


class RotatingCopy(threading.Thread):
    def __init__(self, source: IO[bytes], path: Path, max_bytes: int = MAX_BYTES,
                 keep: int = KEEP) -> None:
        super().__init__(name=f"log-{path.name}", daemon=True)
        self.source, self.path, self.max_bytes, self.keep = source, path, max_bytes, keep

    def run(self) -> None:
        out = self.path.open("ab")
        try:
            for line in iter(self.source.readline, b""):
                if out.tell() + len(line) > self.max_bytes and out.tell() > 0:
                    out.close()
                    self._shift()
                    out = self.path.open("ab")
                out.write(line)
                out.flush()
        finally:
            out.close()
            self.source.close()

    def _shift(self) -> None:
        """``NAME.log.(k-1)`` -> ``NAME.log.k`` ... ``NAME.log`` -> ``NAME.log.1``."""
        for k in range(self.keep, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{k - 1}") if k > 1 else self.path
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{k}"))
