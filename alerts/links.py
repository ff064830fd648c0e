"""Where alerts link to: the runbook section and the dashboard panel of each alert.

The API serves the runbook at ``/runbook`` and Grafana (from the stack) runs on port 3000; both
bases are fixed here because the rendered files are committed.
"""

from __future__ import annotations

from alerts.model import Panel

RUNBOOK_BASE_URL = "http://127.0.0.1:8000/runbook"
GRAFANA_BASE_URL = "http://127.0.0.1:3000"


def anchor(alert: str) -> str:
    """The runbook heading anchor of an alert (GitHub style: lower case)."""
    return alert.lower()


def runbook_url(alert: str) -> str:
    return f"{RUNBOOK_BASE_URL}#{anchor(alert)}"


def dashboard_url(panel: Panel) -> str:
    return f"{GRAFANA_BASE_URL}/d/{panel.dashboard}?viewPanel={panel.panel_id}"
