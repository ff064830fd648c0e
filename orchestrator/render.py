"""Everything ``orchestrator render`` writes, from the Python definitions: alert rules and their
tests, alertmanager.yml, the runbook, the compose stack's prometheus.yml, and the Grafana
dashboards and provisioning (those need grafana-foundation-sdk: the ``render`` extra)."""

from __future__ import annotations

from pathlib import Path

from alerts import render as alerts_render
from operations.drills.drills import drills_by_alert
from service.errors import MissingExtra
from stack import render as stack_render


def all_rendered_files() -> dict[str, str]:
    try:
        from dashboards import render as dashboards_render
    except ImportError as exc:
        raise MissingExtra("orchestrator render (the dashboards)", "render", exc) from exc
    return {**alerts_render.rendered_files(drills_by_alert()), **stack_render.rendered_files(),
            **dashboards_render.rendered_files()}


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
