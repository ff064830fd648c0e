"""The names and labels every manifest shares."""

from __future__ import annotations

from catalog import names as catalog_names

NAMESPACE = "orchestrator"
IMAGE = "orchestrator"
"""The image's name in the manifests; kustomize's ``images:`` sets the real one."""
CONFIG = "orchestrator-config"
SECRETS = "orchestrator-secrets"
"""The Secret every pod reads its secret ``ORCH_*`` settings from (made by the operator of
the deployment, never committed: ``secrets.env.example`` lists them)."""
AUTOSCALER_SECRET = "orchestrator-autoscaler"
"""Holds ``token``: a key with the ``queues:read`` scope, for KEDA's queue-stats trigger."""
API = "orchestrator-api"
API_PORT = 8000
AGENT_METRICS_PORT = 9101
PART_OF = {"app.kubernetes.io/part-of": "orchestrator"}
AGENT_TYPE_LABEL = "orchestrator/agent-type"
SCRAPE_JOB_LABEL = "orchestrator/scrape-job"
"""Pods of an exporter the base does not run (PostgreSQL's, Redis') carry this label with
their scrape job's name, so the PodMonitor finds them."""


def component(name: str) -> dict[str, str]:
    return {**PART_OF, "app.kubernetes.io/component": name}


def agent_deployment(agent: str) -> str:
    return f"orchestrator-agent-{agent.replace('_', '-')}"


def agent_labels(agent: str) -> dict[str, str]:
    return {**component("agent"), AGENT_TYPE_LABEL: agent}


def deployed_agents(known: list[str]) -> list[str]:
    """The agent types the base deploys: every known one but the demo agents."""
    return [agent for agent in known if agent not in catalog_names.DEMO_AGENTS]


MIGRATE = "orchestrator-migrate"


class Workload:
    """A pod template's owner that overlays patch: its kind, name and container."""

    def __init__(self, api_version: str, kind: str, name: str, container: str) -> None:
        self.api_version, self.kind, self.name, self.container = (api_version, kind, name,
                                                                  container)


def workloads(agents: list[str]) -> list[Workload]:
    """Every object whose pods read the orchestrator's settings."""
    return [Workload("apps/v1", "Deployment", API, "api"),
            *(Workload("apps/v1", "Deployment", agent_deployment(a), "agent") for a in agents),
            Workload("batch/v1", "Job", MIGRATE, "migrate")]
