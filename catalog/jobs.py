"""Prometheus scrape jobs: names and the compose stack's interval (the scrape config, the alert
rules and Grafana's datasource share them)."""

API_JOB = "orchestrator-api"
AGENT_JOB = "orchestrator-agent"
RABBITMQ_JOB = "rabbitmq"
ORCHESTRATOR_JOBS = f"{API_JOB}|{AGENT_JOB}"

COMPOSE_SCRAPE_INTERVAL = "15s"
