"""KEDA: a ScaledObject per agent type, scaling its Deployment on the backlog the API reports
(``GET /v1/admin/queue-stats``, the ``metrics-api`` trigger) or, in the ``keda-rabbitmq``
overlay, on the depth of its queues in RabbitMQ."""

from __future__ import annotations

from typing import Any

from alerts.slos import wait_class
from catalog import names as catalog_names
from stack.k8s.names import (
    API,
    API_PORT,
    AUTOSCALER_SECRET,
    NAMESPACE,
    PART_OF,
    SECRETS,
    agent_deployment,
    agent_labels,
)

KEDA = "keda.sh/v1alpha1"
QUEUE_STATS_URL = f"http://{API}.{NAMESPACE}.svc:{API_PORT}/v1/admin/queue-stats"
QUEUE_STATS_AUTH = "orchestrator-queue-stats"
RABBITMQ_AUTH = "orchestrator-rabbitmq"
MIN_REPLICAS = 1
MAX_REPLICAS = 10


def trigger_authentications() -> list[dict[str, Any]]:
    """The queue-stats trigger sends a ``queues:read`` key as a bearer token; the RabbitMQ
    trigger connects with the orchestrator's own AMQP URL."""
    return [
        {"apiVersion": KEDA, "kind": "TriggerAuthentication",
         "metadata": {"name": QUEUE_STATS_AUTH, "labels": PART_OF},
         "spec": {"secretTargetRef": [
             {"parameter": "token", "name": AUTOSCALER_SECRET, "key": "token"}]}},
        {"apiVersion": KEDA, "kind": "TriggerAuthentication",
         "metadata": {"name": RABBITMQ_AUTH, "labels": PART_OF},
         "spec": {"secretTargetRef": [
             {"parameter": "host", "name": SECRETS, "key": "ORCH_AMQP_URL"}]}},
    ]


def backlog_triggers(agent: str, slots: int) -> list[dict[str, Any]]:
    """Scale out when the due backlog exceeds one worker's slots per replica, or when the
    oldest due task has waited longer than its class's queue-wait target."""
    auth = {"name": QUEUE_STATS_AUTH}
    return [
        {"type": "metrics-api", "name": "backlog", "metricType": "AverageValue",
         "metadata": {"url": QUEUE_STATS_URL, "format": "json", "authMode": "bearer",
                      "valueLocation": f"agents.{agent}.queued", "targetValue": str(slots),
                      "activationTargetValue": "0"},
         "authenticationRef": auth},
        {"type": "metrics-api", "name": "oldest-wait", "metricType": "Value",
         "metadata": {"url": QUEUE_STATS_URL, "format": "json", "authMode": "bearer",
                      "valueLocation": f"agents.{agent}.oldest_queued_age_s",
                      "targetValue": f"{wait_class(agent).target_s:g}"},
         "authenticationRef": auth},
    ]


def rabbitmq_triggers(agent: str, slots: int) -> list[dict[str, Any]]:
    """One trigger per priority band's queue (the HPA follows the one asking for most)."""
    return [{"type": "rabbitmq", "name": f"queue-{band}",
             "metadata": {"protocol": "amqp", "queueName": queue, "mode": "QueueLength",
                          "value": str(slots)},
             "authenticationRef": {"name": RABBITMQ_AUTH}}
            for band, queue in enumerate(catalog_names.agent_queues(agent))]


def scaled_object(agent: str, triggers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": KEDA, "kind": "ScaledObject",
            "metadata": {"name": agent_deployment(agent), "labels": agent_labels(agent)},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": agent_deployment(agent)},
                     "minReplicaCount": MIN_REPLICAS, "maxReplicaCount": MAX_REPLICAS,
                     "pollingInterval": 15, "cooldownPeriod": 300,
                     "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                         "scaleDown": {"stabilizationWindowSeconds": 300, "policies": [
                             {"type": "Pods", "value": 1, "periodSeconds": 60}]}}}},
                     "triggers": triggers}}
