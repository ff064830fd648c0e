"""prometheus.yml, from one function: the compose stack and the native runner differ only in
where the targets are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from catalog.jobs import AGENT_JOB, API_JOB, RABBITMQ_JOB

POSTGRES_JOB = "postgres"
REDIS_JOB = "redis"


@dataclass(frozen=True)
class Targets:
    """Where each job's targets are (``host:port``); agents may be a DNS name to resolve."""

    api: list[str]
    alertmanager: list[str]
    agents: list[str] = field(default_factory=list)
    agents_dns: str | None = None
    agent_port: int = 9101
    rabbitmq: list[str] = field(default_factory=list)
    postgres_exporter: list[str] = field(default_factory=list)
    redis_exporter: list[str] = field(default_factory=list)


def prometheus_config(targets: Targets, rule_files: list[str], *, scrape_interval: str = "5s",
                      evaluation_interval: str = "5s") -> dict[str, Any]:
    def static(job: str, hosts: list[str], **extra: Any) -> dict[str, Any]:
        return {"job_name": job, "static_configs": [{"targets": hosts}], **extra}

    agent_job: dict[str, Any]
    if targets.agents_dns:
        agent_job = {"job_name": AGENT_JOB, "dns_sd_configs": [
            {"names": [targets.agents_dns], "type": "A", "port": targets.agent_port,
             "refresh_interval": "15s"}]}
    else:
        agent_job = static(AGENT_JOB, targets.agents)
    jobs = [static(API_JOB, targets.api), agent_job]
    if targets.rabbitmq:
        jobs.append(static(RABBITMQ_JOB, targets.rabbitmq, metrics_path="/metrics/per-object"))
    if targets.postgres_exporter:
        jobs.append(static(POSTGRES_JOB, targets.postgres_exporter))
    if targets.redis_exporter:
        jobs.append(static(REDIS_JOB, targets.redis_exporter))
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval,
                   "external_labels": {"service": "orchestrator"}},
        "rule_files": rule_files,
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": targets.alertmanager}]}]},
        "scrape_configs": jobs,
    }
