"""Every generated file is committed exactly as a fresh ``orchestrator render`` writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.render import all_rendered_files

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("relative", sorted(all_rendered_files()))
def test_generated_file_is_up_to_date(relative: str) -> None:
    path = ROOT / relative
    assert path.exists(), f"{relative} is missing: run `orchestrator render`"
    assert path.read_text() == all_rendered_files()[relative], (
        f"{relative} differs from a fresh render: run `orchestrator render` and commit")
