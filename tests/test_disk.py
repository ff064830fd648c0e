"""Free disk space: every process reports the volumes it writes to, and a bad entry is named."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from catalog import metrics
from catalog.metrics import series_name
from service.gauges.disk import database_is_local, parse_volumes, usage
from tests.services import Env, start_api, wait_until


@pytest.mark.unit
def test_usage_of_a_path_not_created_yet_is_its_nearest_existing_folder(tmp_path: Path) -> None:
    stats = os.statvfs(tmp_path)
    found = usage(str(tmp_path / "not" / "yet"))
    assert found is not None
    assert found.size_bytes == stats.f_blocks * stats.f_frsize
    assert 0 < found.free_ratio <= 1


@pytest.mark.unit
def test_volume_entries_are_name_equals_path_and_a_bad_one_is_named() -> None:
    assert parse_volumes(("wal = /var/wal", "tmp=/tmp")) == {"wal": "/var/wal", "tmp": "/tmp"}
    with pytest.raises(ValueError, match="'just-a-path' is not NAME=PATH"):
        parse_volumes(("just-a-path",))


@pytest.mark.unit
def test_only_a_database_on_this_host_has_its_folder_watched() -> None:
    assert database_is_local("postgresql://postgres@127.0.0.1:5432/x")
    assert database_is_local("postgresql:///x?host=/var/run/postgresql")
    assert not database_is_local("postgresql://db.internal:5432/x")


@pytest.mark.integration
def test_the_api_reports_free_space_of_state_database_and_named_volumes(
        own_env: Env, tmp_path: Path) -> None:
    url = start_api(own_env, environ=own_env.with_vars(disk_volumes=f"scratch={tmp_path}"))
    name = series_name(metrics.DISK_FREE)

    def volumes() -> dict[str, float]:
        page = httpx.get(f"{url}/metrics", timeout=5).text
        return {m.group(1): float(m.group(2))
                for m in re.finditer(rf'^{name}{{volume="([^"]+)"}} (\S+)$', page, re.M)}

    seen = wait_until(lambda: (v := volumes()) and len(v) == 3 and v, timeout_s=20)
    assert set(seen) == {"state", "database", "scratch"}
    scratch = os.statvfs(tmp_path)
    assert abs(seen["scratch"] - scratch.f_bavail * scratch.f_frsize) < 64 * 2**20
