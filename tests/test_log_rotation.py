"""The stack's children's logs rotate by size: the newest lines in ``NAME.log``, older ones
in ``NAME.log.1`` and ``.2``, nothing older kept, no line split between files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stack.log_rotation import RotatingCopy

pytestmark = pytest.mark.unit


def test_a_log_past_its_size_moves_to_numbered_files(tmp_path: Path) -> None:
    read, write = os.pipe()
    log = tmp_path / "prometheus.log"
    copier = RotatingCopy(os.fdopen(read, "rb"), log, max_bytes=1000, keep=2)
    copier.start()
    with os.fdopen(write, "wb") as out:
        for n in range(100):
            out.write(f"line {n:03d} {'x' * 40}\n".encode())  # 50 bytes: 20 lines a file
    copier.join(10)
    assert not copier.is_alive()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["prometheus.log", "prometheus.log.1", "prometheus.log.2"]
    newest, older, oldest = (
        (tmp_path / name).read_text().splitlines()
        for name in ("prometheus.log", "prometheus.log.1", "prometheus.log.2"))
    assert all(len(f) == 20 for f in (newest, older, oldest))
    assert newest[-1].startswith("line 099") and older[0].startswith("line 060")
    assert oldest[0].startswith("line 040")  # lines 000-039 are gone
