"""The orchestrator's own objects: its configuration, the API (Deployment, Service,
PodDisruptionBudget), one Deployment per agent type, and the migration Job."""

from __future__ import annotations

from typing import Any

from service.settings import Settings, environment
from stack.k8s.names import (
    AGENT_METRICS_PORT,
    API,
    API_PORT,
    CONFIG,
    IMAGE,
    MIGRATE,
    SECRETS,
    agent_deployment,
    agent_labels,
    component,
)

NOT_CONFIGURED = frozenset({
    "ORCH_INSTANCE_ID",  # set by the process that starts an API server, per server
    # the native runner's own (``stack up``): the cluster's Prometheus and Alertmanager are
    # the prometheus-operator's
    "ORCH_PROMETHEUS_PORT", "ORCH_ALERTMANAGER_PORT", "ORCH_PAGE_INBOX_PORT",
    "ORCH_STACK_SCRAPE_INTERVAL", "ORCH_ALERT_FOR_OVERRIDE", "ORCH_ALERT_WINDOW_OVERRIDE",
    "ORCH_ALERT_GROUP_WAIT", "ORCH_ALERT_GROUP_INTERVAL", "ORCH_PAGERDUTY_ROUTING_KEY",
})
"""Settings the pods do not take from the ConfigMap or the Secret, and why."""
GRACE_MARGIN_S = 15
"""``terminationGracePeriodSeconds`` is the process's own shutdown grace plus this: the
kubelet's SIGKILL must not cut the grace short."""
API_DRAIN_S = 30
"""How long an API pod may take to stop: in-flight requests and the relay's batch finish."""


def in_cluster(settings: Settings, agents: list[str]) -> Settings:
    """The settings the ConfigMap holds: the defaults, listening on every interface (a
    pod's address is not loopback), and every deployed agent type expected to have a worker."""
    return settings.with_overrides(api_host="0.0.0.0", metrics_host="0.0.0.0",
                                   environment="kubernetes", deployed_agents=tuple(agents))


def config_map(settings: Settings) -> dict[str, Any]:
    data = {name: value for name, value in environment(settings, secret=False).items()
            if name not in NOT_CONFIGURED}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIG, "labels": component("config")}, "data": data}


def secret_names() -> list[str]:
    """The secret settings the pods read from ``SECRETS``."""
    return [name for name in environment(Settings(), secret=True) if name not in NOT_CONFIGURED]


def _container(name: str, args: list[str], ports: dict[str, int],
               resources: dict[str, Any], probe_port: str | None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name, "image": IMAGE, "args": args,
        "envFrom": [{"configMapRef": {"name": CONFIG}}, {"secretRef": {"name": SECRETS}}],
        "ports": [{"name": port, "containerPort": number, "protocol": "TCP"}
                  for port, number in ports.items()],
        "resources": resources,
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "readOnlyRootFilesystem": False,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if probe_port:
        container["livenessProbe"] = {
            "httpGet": {"path": "/health/live", "port": probe_port}, "periodSeconds": 10,
            "timeoutSeconds": 3, "failureThreshold": 3}
        container["readinessProbe"] = {
            "httpGet": {"path": "/health/ready", "port": probe_port}, "periodSeconds": 5,
            "timeoutSeconds": 3, "failureThreshold": 2}
        container["startupProbe"] = {
            "httpGet": {"path": "/health/live", "port": probe_port}, "periodSeconds": 2,
            "failureThreshold": 30}
    return container


def _deployment(name: str, labels: dict[str, str], replicas: int, container: dict[str, Any],
                grace_s: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels}, "spec": {
                "terminationGracePeriodSeconds": grace_s,
                "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
                "containers": [container]}}},
    }


def _disruption_budget(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "labels": labels},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}}


def api_objects() -> list[dict[str, Any]]:
    """The API: two replicas (each runs the outbox relay, the scheduler and the callbacks, all
    safe side by side), its Service and its disruption budget."""
    labels = component("api")
    container = _container("api", ["api"], {"http": API_PORT},
                           {"requests": {"cpu": "500m", "memory": "256Mi"},
                            "limits": {"memory": "1Gi"}}, "http")
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": API, "labels": labels},
               "spec": {"selector": labels, "ports": [
                   {"name": "http", "port": API_PORT, "targetPort": "http",
                    "protocol": "TCP"}]}}
    return [_deployment(API, labels, 2, container, API_DRAIN_S + GRACE_MARGIN_S), service,
            _disruption_budget(API, labels)]


def agent_objects(agent: str, settings: Settings) -> list[dict[str, Any]]:
    """One agent type's workers: a Deployment (KEDA scales it) and its disruption budget."""
    labels = agent_labels(agent)
    name = agent_deployment(agent)
    container = _container("agent", ["agent", "--agents", agent,
                                     "--metrics-port", str(AGENT_METRICS_PORT)],
                           {"metrics": AGENT_METRICS_PORT},
                           {"requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"memory": "1Gi"}}, "metrics")
    grace = int(settings.worker.shutdown_grace_s) + GRACE_MARGIN_S
    return [_deployment(name, labels, 1, container, grace), _disruption_budget(name, labels)]


def migration_job() -> dict[str, Any]:
    """``orchestrator migrate``, once per apply (delete the finished Job before the next
    release's apply: a Job's template cannot change)."""
    labels = component("migrate")
    container = _container("migrate", ["migrate"], {}, {
        "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}, None)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": MIGRATE, "labels": labels},
            "spec": {"backoffLimit": 6, "ttlSecondsAfterFinished": 86400, "template": {
                "metadata": {"labels": labels}, "spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": {"runAsUser": 10001, "runAsGroup": 10001},
                    "containers": [container]}}}}
