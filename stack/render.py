"""The compose stack's generated file: its prometheus.yml (targets are compose service names)."""

from __future__ import annotations

from alerts.jobs import COMPOSE_SCRAPE_INTERVAL
from alerts.render import to_yaml
from stack.prometheus_config import Targets, prometheus_config

PROMETHEUS = "stack/prometheus/prometheus.yml"

COMPOSE_TARGETS = Targets(
    api=["api:8000"], alertmanager=["alertmanager:9093"], agents_dns="agent", agent_port=9101,
    rabbitmq=["rabbitmq:15692"], postgres_exporter=["postgres-exporter:9187"],
    redis_exporter=["redis-exporter:9121"])


def rendered_files() -> dict[str, str]:
    config = prometheus_config(COMPOSE_TARGETS, ["/etc/prometheus/rules/*.yml"],
                               scrape_interval=COMPOSE_SCRAPE_INTERVAL,
                               evaluation_interval=COMPOSE_SCRAPE_INTERVAL)
    return {PROMETHEUS: to_yaml(config)}
