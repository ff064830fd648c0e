"""prometheus-client's multiprocess mode for the API server's worker processes.

Kept apart from everything that imports prometheus-client: the mode is fixed when that package is
first imported, so this must run before.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(path: str) -> None:
    """Empty ``path`` and point prometheus-client (in this process and its children) at it."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before multiprocess mode was set up")
    shutil.rmtree(path, ignore_errors=True)
    Path(path).mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = path
