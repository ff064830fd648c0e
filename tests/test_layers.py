"""The layers as the package docstrings state them: no module imports a layer above its own,
the composition root is imported by nobody, and the API and agent image installs without the
load tester's and the renderers' heavy dependencies."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAY_IMPORT = {
    "orchestrator": {"catalog", "service", "agents", "alerts", "dashboards", "stack",
                     "loadtest", "operations"},
    "operations": {"catalog", "service", "agents", "alerts", "stack"},
    "loadtest": {"catalog", "service", "alerts"},
    "stack": {"catalog", "service", "alerts"},
    "dashboards": {"catalog", "service", "alerts"},
    "alerts": {"catalog", "service"},
    "service": {"catalog", "agents"},
    "agents": set(),
    "catalog": set(),
}
"""Each layer and the other layers it may import (the composition root: all of them)."""


def imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names]
    names += [node.module for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and node.level == 0]
    return {name.split(".")[0] for name in names} & set(MAY_IMPORT)


@pytest.mark.unit
@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_no_module_imports_a_layer_it_may_not(layer: str) -> None:
    wrong = {str(path.relative_to(ROOT)): sorted(found - MAY_IMPORT[layer] - {layer})
             for path in sorted((ROOT / layer).rglob("*.py"))
             if (found := imported_layers(path)) - MAY_IMPORT[layer] - {layer}}
    assert wrong == {}


@pytest.mark.unit
def test_the_command_line_loads_without_prometheus_client() -> None:
    """``orchestrator api`` sets up prometheus-client's multiprocess mode before that package is
    first imported: importing the command line must not import it."""
    probe = "import sys, orchestrator.main; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"


def _image_context(target: Path) -> None:
    """What the Dockerfile's build stage copies, copied into ``target`` as ``COPY`` does (into
    a destination ending in ``/``, each source by its name; else the one source as it)."""
    build_stage = ROOT.joinpath("Dockerfile").read_text().split("\nFROM ", 2)[1]
    for line in build_stage.splitlines():
        if not line.startswith("COPY "):
            continue
        *patterns, destination = line.split()[1:]
        for source in (found for pattern in patterns for found in sorted(ROOT.glob(pattern))):
            place = (target / destination / source.name if destination.endswith("/")
                     else target / destination)
            if source.is_dir():
                shutil.copytree(source, place, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                place.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, place)


@pytest.mark.integration
def test_the_image_installs_without_the_load_tester_and_renderer_dependencies(
        tmp_path: Path) -> None:
    # Given what the Dockerfile copies, installed as it does (`pip install .`, no extras)
    context, env_dir = tmp_path / "src", tmp_path / "venv"
    _image_context(context)
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    installed = subprocess.run([python, "-m", "pip", "install", "-q", str(context)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    # Then neither heavy dependency is there, and the API, the agent runtime and the command
    # line all load
    modules = subprocess.run(
        [python, "-c", "import importlib.util as u; print(u.find_spec('matplotlib') is None,"
                       " u.find_spec('grafana_foundation_sdk') is None)"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert modules.stdout.split() == ["True", "True"]
    loads = subprocess.run([python, "-c", "import orchestrator.asgi, service.worker.worker,"
                                          " orchestrator.main"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert loads.returncode == 0, loads.stderr
    # And a command that needs an extra says which one, in one line
    render = subprocess.run([str(env_dir / "bin" / "orchestrator"), "render", "--root",
                             str(tmp_path / "out")], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert render.returncode == 2
    assert "needs the 'render' extra" in render.stderr and "Traceback" not in render.stderr
