"""What the prometheus-operator and Grafana's sidecar read: a PrometheusRule with exactly the
generated alert and recording rules, a ServiceMonitor or PodMonitor per scrape job (each
keeping the job name the rules select on), and the dashboards and their datasource as
ConfigMaps with the sidecar's labels."""

from __future__ import annotations

import json
from typing import Any

from alerts.links import Deployment
from alerts.rules import rule_groups
from catalog.jobs import AGENT_JOB, API_JOB, COMPOSE_SCRAPE_INTERVAL, RABBITMQ_JOB
from catalog.panels import DATASOURCE_UID
from stack.k8s.names import NAMESPACE, PART_OF, SCRAPE_JOB_LABEL, component
from stack.prometheus_config import POSTGRES_JOB, REDIS_JOB

RULE_LABELS = {**PART_OF, "role": "alert-rules"}
"""The PrometheusRule's labels: the operator's ``ruleSelector`` must match them (it selects
nothing by default; kube-prometheus-stack selects its release label)."""
MONITOR = "monitoring.coreos.com/v1"
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
DATASOURCE_LABEL = {"grafana_datasource": "1"}
"""The labels kube-prometheus-stack's Grafana sidecars look for (their defaults)."""
PROMETHEUS_URL = "http://prometheus-operated.monitoring.svc:9090"
"""Where the Grafana datasource finds Prometheus: the operator's Service in ``monitoring``."""
RABBITMQ_SELECTOR = {"app.kubernetes.io/component": "rabbitmq"}
"""The label the RabbitMQ cluster-operator gives its Services."""


def prometheus_rule(deployment: Deployment) -> dict[str, Any]:
    return {"apiVersion": MONITOR, "kind": "PrometheusRule",
            "metadata": {"name": "orchestrator", "labels": RULE_LABELS},
            "spec": rule_groups(deployment)}


def _job(job: str) -> list[dict[str, str]]:
    """Relabelling that names the job as the rules expect (the operator's default is the
    Service's or the monitor's name)."""
    return [{"targetLabel": "job", "replacement": job, "action": "replace"}]


def _endpoint(port: str, job: str, path: str = "/metrics") -> dict[str, Any]:
    return {"port": port, "path": path, "interval": COMPOSE_SCRAPE_INTERVAL,
            "relabelings": _job(job)}


def _service_monitor(name: str, selector: dict[str, str], endpoint: dict[str, Any],
                     namespaces: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": selector}, "endpoints": [endpoint]}
    if namespaces:
        spec["namespaceSelector"] = {"matchNames": namespaces}
    return {"apiVersion": MONITOR, "kind": "ServiceMonitor",
            "metadata": {"name": name, "labels": PART_OF}, "spec": spec}


def _pod_monitor(name: str, selector: dict[str, str], endpoint: dict[str, Any]
                 ) -> dict[str, Any]:
    return {"apiVersion": MONITOR, "kind": "PodMonitor",
            "metadata": {"name": name, "labels": PART_OF},
            "spec": {"selector": {"matchLabels": selector},
                     "podMetricsEndpoints": [endpoint]}}


def monitors() -> dict[str, dict[str, Any]]:
    """Scrape job -> the monitor object that scrapes it."""
    return {
        API_JOB: _service_monitor("orchestrator-api", component("api"),
                                  _endpoint("http", API_JOB)),
        AGENT_JOB: _pod_monitor("orchestrator-agent", component("agent"),
                                _endpoint("metrics", AGENT_JOB)),
        RABBITMQ_JOB: _service_monitor("orchestrator-rabbitmq", RABBITMQ_SELECTOR, _endpoint(
            "prometheus", RABBITMQ_JOB, "/metrics/per-object"), [NAMESPACE]),
        POSTGRES_JOB: _pod_monitor("orchestrator-postgres", {SCRAPE_JOB_LABEL: POSTGRES_JOB},
                                   _endpoint("metrics", POSTGRES_JOB)),
        REDIS_JOB: _pod_monitor("orchestrator-redis", {SCRAPE_JOB_LABEL: REDIS_JOB},
                                _endpoint("metrics", REDIS_JOB)),
    }


def dashboard_config_maps(dashboards: dict[str, str]) -> list[dict[str, Any]]:
    """One ConfigMap per dashboard (``uid -> JSON``), and the datasource they name."""
    maps = [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": f"orchestrator-dashboard-{uid}",
                          "labels": {**PART_OF, **DASHBOARD_LABEL},
                          "annotations": {"grafana_folder": "Orchestrator"}},
             "data": {f"{uid}.json": text}} for uid, text in sorted(dashboards.items())]
    datasource = {"apiVersion": 1, "datasources": [{
        "name": "Orchestrator Prometheus", "type": "prometheus", "uid": DATASOURCE_UID,
        "access": "proxy", "url": PROMETHEUS_URL, "isDefault": False, "editable": False,
        "jsonData": {"timeInterval": COMPOSE_SCRAPE_INTERVAL, "httpMethod": "POST"}}]}
    maps.append({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "orchestrator-grafana-datasource",
                              "labels": {**PART_OF, **DATASOURCE_LABEL}},
                 "data": {"orchestrator-datasource.yaml": json.dumps(datasource, indent=2)}})
    return maps
