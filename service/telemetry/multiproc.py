"""prometheus-client's multiprocess mode for the API server's worker processes.

Every server instance owns a folder of its own (``api-<pid>`` under one parent), so a second
start, even one that then fails to bind, never empties the folder of an instance that runs.
Kept apart from everything that imports prometheus-client: the mode is fixed when that package is
first imported, so this must run before.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from service.procinfo import alive

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PREFIX = "api-"


def claim_multiprocess_dir(parent: Path) -> Path:
    """Create this instance's folder under ``parent`` and point prometheus-client (in this
    process and the server workers it starts) at it; folders of instances that no longer run
    are removed on the way."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before multiprocess mode was set up")
    parent.mkdir(parents=True, exist_ok=True)
    for folder in parent.glob(f"{_PREFIX}*"):
        owner = folder.name.removeprefix(_PREFIX)
        if owner.isdigit() and not alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
    path = parent / f"{_PREFIX}{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)  # left by a dead process that had this pid
    path.mkdir()
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def release_multiprocess_dir(path: Path) -> None:
    """Remove this instance's folder (at its exit)."""
    shutil.rmtree(path, ignore_errors=True)
