"""Everything ``orchestrator render`` writes, from the Python definitions: alert rules and their
tests, alertmanager.yml, the runbook, the compose stack's prometheus.yml, and (when the dashboards
package provides them) the Grafana dashboards and provisioning."""

from __future__ import annotations

import importlib
from pathlib import Path

RENDERERS = ("alerts.render", "stack.render", "dashboards.render")


def all_rendered_files() -> dict[str, str]:
    files: dict[str, str] = {}
    for name in RENDERERS:
        module = importlib.import_module(name)
        files.update(module.rendered_files())
    return files


def render_all(root: Path) -> list[str]:
    """Write every generated file under ``root``; return the paths that changed."""
    changed = []
    for relative, content in all_rendered_files().items():
        path = root / relative
        if not path.exists() or path.read_text() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            changed.append(relative)
    return changed
