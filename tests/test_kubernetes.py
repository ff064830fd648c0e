"""The Kubernetes manifests (``stack/kubernetes/``, rendered from stack/k8s/): the
PrometheusRule holds exactly the committed rules, every scrape job has a monitor that keeps its
job name and selects what the base runs, every ``ORCH_`` variable a pod reads is a setting,
kustomize renders the base and each overlay, the core objects pass the Kubernetes schema, and
the custom resources carry the fields their operators read."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from alerts.render import RULE_FILES
from catalog import names as catalog_names
from service.settings import PREFIX, Settings, environment
from stack.k8s import names, workloads
from stack.k8s.render import OVERLAYS, ROOT
from stack.prometheus_config import prometheus_config
from stack.render import COMPOSE_TARGETS
from tests.services import ORCHESTRATOR

pytestmark = pytest.mark.unit

CHECKOUT = Path(__file__).resolve().parent.parent
KUBERNETES_VERSION = "1.30"
CORE_KINDS = {"Namespace", "ConfigMap", "Service", "Deployment", "Job", "PodDisruptionBudget"}


def kustomize(folder: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) is part of this machine's image: TOOLCHAIN.md"
    out = subprocess.run([kubectl, "kustomize", str(CHECKOUT / ROOT / folder)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize("base")


def containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for o in objects if o["kind"] in ("Deployment", "Job")
            for c in o["spec"]["template"]["spec"]["containers"]]


def test_the_prometheus_rule_holds_exactly_the_committed_rule_files(
        base: list[dict[str, Any]]) -> None:
    committed = [group for path in RULE_FILES.values()
                 for group in yaml.safe_load((CHECKOUT / path).read_text())["groups"]]
    rule = named(base, "PrometheusRule", "orchestrator")
    assert rule["spec"]["groups"] == committed
    alerts = [r["alert"] for g in committed for r in g["rules"] if "alert" in r]
    assert len(alerts) > 20 and "role" in rule["metadata"]["labels"]  # the docs' ruleSelector


def _relabelled_job(endpoint: dict[str, Any]) -> str:
    [job] = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    return str(job)


def test_every_scrape_job_has_a_monitor_that_keeps_its_name_and_finds_its_targets(
        base: list[dict[str, Any]]) -> None:
    jobs = {job["job_name"] for job in prometheus_config(COMPOSE_TARGETS, [])["scrape_configs"]}
    monitored: dict[str, dict[str, Any]] = {}
    for monitor in of_kind(base, "ServiceMonitor") + of_kind(base, "PodMonitor"):
        endpoints = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
        for endpoint in endpoints:
            monitored[_relabelled_job(endpoint)] = {**monitor, "endpoint": endpoint}
    assert set(monitored) == jobs
    # the orchestrator's own: the selectors match what the base runs, on a port it opens
    api_service = named(base, "Service", names.API)
    api_monitor = monitored["orchestrator-api"]
    assert api_monitor["kind"] == "ServiceMonitor"
    assert api_monitor["spec"]["selector"]["matchLabels"].items() <= \
        api_service["metadata"]["labels"].items()
    assert api_monitor["endpoint"]["port"] in {p["name"] for p in api_service["spec"]["ports"]}
    agent_monitor = monitored["orchestrator-agent"]
    agents = [d for d in of_kind(base, "Deployment") if d["metadata"]["name"] != names.API]
    assert agents
    for deployment in agents:
        pod = deployment["spec"]["template"]
        assert agent_monitor["spec"]["selector"]["matchLabels"].items() <= \
            pod["metadata"]["labels"].items()
        assert agent_monitor["endpoint"]["port"] in {
            p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert monitored["rabbitmq"]["endpoint"]["path"] == "/metrics/per-object"


def test_every_orch_variable_a_pod_reads_is_a_setting_and_every_setting_is_wired(
        base: list[dict[str, Any]]) -> None:
    config = named(base, "ConfigMap", names.CONFIG)["data"]
    secret_example = [line.split("=", 1)[0] for line in
                      (CHECKOUT / ROOT / "secrets.env.example").read_text().splitlines()
                      if line and not line.startswith("#")]
    read = set(config) | set(secret_example)
    for container in containers(base):
        assert {"configMapRef": {"name": names.CONFIG}} in container["envFrom"]
        assert {"secretRef": {"name": names.SECRETS}} in container["envFrom"]
        read |= {e["name"] for e in container.get("env", []) if e["name"].startswith(PREFIX)}
    settings = Settings.from_env(dict.fromkeys(secret_example, "x") | config)
    assert settings.extra == {}  # no variable that no setting reads
    every = set(environment(Settings(), secret=False)) | set(environment(Settings(), secret=True))
    assert read | workloads.NOT_CONFIGURED == every  # and each one is wired or says why not
    assert settings.api.host == settings.telemetry.metrics_host == "0.0.0.0"
    agent_types = {d["metadata"]["labels"].get(names.AGENT_TYPE_LABEL)
                   for d in of_kind(base, "Deployment")} - {None}
    assert set(settings.worker.deployed_agents) == agent_types  # each pages when it has none
    assert not agent_types & set(catalog_names.DEMO_AGENTS)


def test_pods_stop_within_their_grace_and_are_probed_where_they_answer(
        base: list[dict[str, Any]]) -> None:
    grace = Settings().worker.shutdown_grace_s
    for deployment in of_kind(base, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] > grace
        [container] = pod["containers"]
        ports = {p["name"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["readinessProbe"]["httpGet"]["port"] in ports
        assert container["resources"]["requests"] and container["resources"]["limits"]
        budget = named(base, "PodDisruptionBudget", deployment["metadata"]["name"])
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert named(base, "Job", names.MIGRATE)["spec"]["template"]["spec"]["containers"][0][
        "args"] == ["migrate"]


@pytest.mark.parametrize("folder", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_kustomize_renders_and_the_core_objects_pass_the_kubernetes_schema(folder: str) -> None:
    objects = kustomize(folder)
    core = [o for o in objects if o["kind"] in CORE_KINDS]
    assert {o["kind"] for o in core} == CORE_KINDS
    for obj in core:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert all(o["metadata"].get("namespace") == names.NAMESPACE
               for o in objects if o["kind"] != "Namespace")


def test_the_autoscalers_read_the_queue_stats_or_every_band_of_the_queues(
        base: list[dict[str, Any]]) -> None:
    scaled = of_kind(base, "ScaledObject")
    deployments = {d["metadata"]["name"] for d in of_kind(base, "Deployment")} - {names.API}
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == deployments
    auths = {a["metadata"]["name"]: a for a in of_kind(base, "TriggerAuthentication")}
    for obj in scaled:
        agent = obj["metadata"]["labels"][names.AGENT_TYPE_LABEL]
        assert obj["spec"]["minReplicaCount"] >= 1  # a deployed type with no worker pages
        triggers = obj["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"metrics-api"}
        assert {t["metadata"]["valueLocation"] for t in triggers} == {
            f"agents.{agent}.queued", f"agents.{agent}.oldest_queued_age_s"}
        for trigger in triggers:
            assert trigger["metadata"]["url"].endswith("/v1/admin/queue-stats")
            assert trigger["metadata"]["authMode"] == "bearer"
            float(trigger["metadata"]["targetValue"])
            [ref] = auths[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
            assert ref["parameter"] == "token" and ref["name"] == names.AUTOSCALER_SECRET
    on_queues = of_kind(kustomize("overlays/keda-rabbitmq"), "ScaledObject")
    for obj in on_queues:
        agent = obj["metadata"]["labels"][names.AGENT_TYPE_LABEL]
        triggers = obj["spec"]["triggers"]
        assert [t["metadata"]["queueName"] for t in triggers] == list(
            catalog_names.agent_queues(agent))
        assert {t["type"] for t in triggers} == {"rabbitmq"}
        [ref] = auths[triggers[0]["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
        assert (ref["parameter"], ref["key"]) == ("host", "ORCH_AMQP_URL")


def _env(objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    envs = [{e["name"]: e for e in c.get("env", [])} for c in containers(objects)]
    assert len(envs) == len(of_kind(objects, "Deployment")) + 1  # and the migration Job
    return envs


def test_the_overlays_bring_a_replicated_database_and_broker_and_every_pod_uses_them() -> None:
    cnpg = kustomize("overlays/cloudnative-pg")
    [cluster] = of_kind(cnpg, "Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1" and cluster["spec"]["instances"] == 3
    assert cluster["spec"]["postgresql"]["synchronous"]["number"] >= 1
    assert cluster["spec"]["bootstrap"]["initdb"]["database"] == "orchestrator"
    for env in _env(cnpg):
        assert env["ORCH_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": f"{cluster['metadata']['name']}-app", "key": "uri"}
    postgres = named(cnpg, "PodMonitor", "orchestrator-postgres")
    assert postgres["spec"]["selector"]["matchLabels"] == {
        "cnpg.io/cluster": cluster["metadata"]["name"]}
    assert _relabelled_job(postgres["spec"]["podMetricsEndpoints"][0]) == "postgres"

    rabbit = kustomize("overlays/rabbitmq-cluster")
    [broker] = of_kind(rabbit, "RabbitmqCluster")
    assert broker["apiVersion"] == "rabbitmq.com/v1beta1" and broker["spec"]["replicas"] == 3
    assert "pause_minority" in broker["spec"]["rabbitmq"]["additionalConfig"]
    for env in _env(rabbit):
        url = env["ORCH_AMQP_URL"]["value"]
        assert url.startswith("amqp://$(RABBITMQ_USERNAME):$(RABBITMQ_PASSWORD)@")
        assert f"@{broker['metadata']['name']}:5672/" in url
        # Kubernetes expands $(NAME) only from variables defined before it
        order = list(env)
        assert order.index("RABBITMQ_PASSWORD") < order.index("ORCH_AMQP_URL")
    monitor = named(rabbit, "ServiceMonitor", "orchestrator-rabbitmq")
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/component": "rabbitmq"}  # the cluster-operator's Service label


def test_render_kubernetes_writes_a_deployments_own_links_and_values(tmp_path: Path) -> None:
    environ = {**os.environ, "ORCH_PUBLIC_URL": "https://orchestrator.example.com",
               "ORCH_GRAFANA_URL": "https://grafana.example.com", "ORCH_CONCURRENCY": "40"}
    out = subprocess.run([*ORCHESTRATOR, "render", "--kubernetes", str(tmp_path)],
                         capture_output=True, text=True, env=environ, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "wrote base/kustomization.yaml" in out.stdout
    docs = list(yaml.safe_load_all((tmp_path / "base" / "monitoring.yaml").read_text()))
    rules = [r for g in docs[0]["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert all(r["annotations"]["runbook_url"].startswith(
        "https://orchestrator.example.com/runbook") for r in rules)
    config = yaml.safe_load((tmp_path / "base" / "config.yaml").read_text())["data"]
    assert config["ORCH_PUBLIC_URL"] == "https://orchestrator.example.com"
    scaled = list(yaml.safe_load_all((tmp_path / "base" / "autoscaling.yaml").read_text()))
    backlog = [t for s in scaled if s["kind"] == "ScaledObject" for t in s["spec"]["triggers"]
               if t["name"] == "backlog"]
    assert backlog and {t["metadata"]["targetValue"] for t in backlog} == {"40"}
    assert not (tmp_path / "stack").exists()
