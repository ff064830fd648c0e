"""The overlays: PostgreSQL as a CloudNativePG ``Cluster`` (synchronous replication), RabbitMQ
as a cluster-operator ``RabbitmqCluster`` (three replicas), and KEDA scaling on RabbitMQ's
queue depths instead of the API's queue stats. Each patches the orchestrator's pods to use
what it brings."""

from __future__ import annotations

from typing import Any

from stack.k8s.monitoring import MONITOR
from stack.k8s.names import PART_OF, SCRAPE_JOB_LABEL, Workload
from stack.prometheus_config import POSTGRES_JOB

DATABASE = "orchestrator-db"
"""The CloudNativePG cluster; its operator writes ``orchestrator-db-app`` (key ``uri``)."""
BROKER = "orchestrator-rabbitmq"
"""The RabbitmqCluster; its operator writes ``orchestrator-rabbitmq-default-user``."""
RABBITMQ_IMAGE = "rabbitmq:3.13.7-management"
POSTGRES_IMAGE = "ghcr.io/cloudnative-pg/postgresql:15.8"


def cnpg_cluster() -> dict[str, Any]:
    return {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
            "metadata": {"name": DATABASE, "labels": PART_OF},
            "spec": {
                "instances": 3, "imageName": POSTGRES_IMAGE,
                "primaryUpdateStrategy": "unsupervised",
                # a commit waits for one standby: a failover loses no accepted task
                "postgresql": {"synchronous": {"method": "any", "number": 1,
                                               "dataDurability": "required"},
                               "parameters": {"max_connections": "200",
                                              "shared_buffers": "256MB"}},
                "bootstrap": {"initdb": {"database": "orchestrator", "owner": "orchestrator"}},
                "storage": {"size": "20Gi"},
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                              "limits": {"memory": "2Gi"}},
                "monitoring": {"enablePodMonitor": False}}}


def database_url_patch(workload: Workload) -> dict[str, Any]:
    """``ORCH_DATABASE_URL`` from the cluster's application secret (an ``env`` entry wins
    over the Secret's ``envFrom``)."""
    return _env_patch(workload, [{"name": "ORCH_DATABASE_URL", "valueFrom": {
        "secretKeyRef": {"name": f"{DATABASE}-app", "key": "uri"}}}])


def postgres_monitor_patch() -> dict[str, Any]:
    """The postgres scrape job reads the CloudNativePG instances' own exporters."""
    return {"apiVersion": MONITOR, "kind": "PodMonitor",
            "metadata": {"name": "orchestrator-postgres"},
            # a custom resource is merge-patched: null removes the base's selector label
            "spec": {"selector": {"matchLabels": {SCRAPE_JOB_LABEL: None,
                                                  "cnpg.io/cluster": DATABASE}},
                     "podMetricsEndpoints": [{"port": "metrics", "relabelings": [
                         {"targetLabel": "job", "replacement": POSTGRES_JOB,
                          "action": "replace"}]}]}}


def rabbitmq_cluster() -> dict[str, Any]:
    return {"apiVersion": "rabbitmq.com/v1beta1", "kind": "RabbitmqCluster",
            "metadata": {"name": BROKER, "labels": PART_OF},
            "spec": {
                "replicas": 3, "image": RABBITMQ_IMAGE,
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                              "limits": {"memory": "2Gi"}},
                "persistence": {"storage": "20Gi"},
                "rabbitmq": {"additionalPlugins": ["rabbitmq_prometheus"],
                             "additionalConfig": "cluster_partition_handling = pause_minority\n"
                                                 "vm_memory_high_watermark.relative = 0.6\n"},
                "override": {"statefulSet": {"spec": {"podManagementPolicy": "Parallel"}}}}}


def amqp_url_patch(workload: Workload) -> dict[str, Any]:
    """``ORCH_AMQP_URL`` built from the cluster's default user (Kubernetes expands ``$(...)``
    from the variables before it)."""
    secret = f"{BROKER}-default-user"
    return _env_patch(workload, [
        {"name": "RABBITMQ_USERNAME",
         "valueFrom": {"secretKeyRef": {"name": secret, "key": "username"}}},
        {"name": "RABBITMQ_PASSWORD",
         "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}},
        {"name": "ORCH_AMQP_URL",
         "value": f"amqp://$(RABBITMQ_USERNAME):$(RABBITMQ_PASSWORD)@{BROKER}:5672/"}])


def _env_patch(workload: Workload, env: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": workload.api_version, "kind": workload.kind,
            "metadata": {"name": workload.name}, "spec": {"template": {"spec": {
                "containers": [{"name": workload.container, "env": env}]}}}}


def scaled_object_patch(name: str, triggers: list[dict[str, Any]]) -> dict[str, Any]:
    """A ScaledObject's triggers replaced (a custom resource's lists merge as a whole)."""
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name}, "spec": {"triggers": triggers}}
