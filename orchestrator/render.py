"""Everything ``orchestrator render`` writes, from the Python definitions: alert rules and their
tests, alertmanager.yml, the runbook, the compose stack's prometheus.yml, the Grafana
dashboards and provisioning, and the Kubernetes manifests (the dashboards need
grafana-foundation-sdk: the ``render`` extra)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from agents.registry import known_agents, load_agent_modules
from alerts import render as alerts_render
from operations.drills.drills import drills_by_alert
from service.errors import MissingExtra
from service.settings import Settings
from stack import render as stack_render
from stack.k8s.render import ROOT as KUBERNETES_ROOT
from stack.k8s.render import kubernetes_files


def _dashboards_render() -> ModuleType:
    try:
        from dashboards import render as dashboards_render
    except ImportError as exc:
        raise MissingExtra("orchestrator render (the dashboards)", "render", exc) from exc
    return dashboards_render


def _dashboards(grafana_files: dict[str, str]) -> dict[str, str]:
    """uid -> JSON of each dashboard among the rendered Grafana files."""
    folder = f"{_dashboards_render().DASHBOARD_DIR}/"
    return {path.removeprefix(folder).removesuffix(".json"): text
            for path, text in grafana_files.items() if path.startswith(folder)}


def all_rendered_files() -> dict[str, str]:
    """The committed files: every link and value at the settings' defaults."""
    grafana = _dashboards_render().rendered_files()
    return {**alerts_render.rendered_files(drills_by_alert()), **stack_render.rendered_files(),
            **grafana, **_kubernetes(Settings.from_env({}), grafana)}


def _kubernetes(settings: Settings, grafana_files: dict[str, str]) -> dict[str, str]:
    load_agent_modules(settings.worker.agent_modules)
    return kubernetes_files(settings, known_agents(), _dashboards(grafana_files))


def _write(files: dict[str, str], root: Path) -> list[str]:
    changed = []
    for relative, content in files.items():
        path = root / relative
        if not path.exists() or path.read_text() != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            changed.append(relative)
    return changed


def render_all(root: Path) -> list[str]:
    """Write every generated file under ``root``; return the paths that changed."""
    return _write(all_rendered_files(), root)


def render_kubernetes(settings: Settings, out: Path) -> list[str]:
    """Write the Kubernetes manifests for ``settings`` (the runbook and dashboard links of
    their alerts follow ``ORCH_PUBLIC_URL``/``ORCH_RUNBOOK_URL`` and ``ORCH_GRAFANA_URL``, the
    ConfigMap holds every setting's value) into ``out``; return the paths that changed."""
    files = _kubernetes(settings, _dashboards_render().rendered_files())
    prefix = f"{KUBERNETES_ROOT}/"
    return _write({path.removeprefix(prefix): text for path, text in files.items()}, out)
