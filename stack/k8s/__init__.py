"""Kubernetes manifests as code: ``orchestrator render`` writes them to ``stack/kubernetes/``
(a kustomize base and overlays) from the same definitions as the rest of the stack: the
settings, the agent types, the alert and recording rules, the scrape jobs, the dashboards."""
