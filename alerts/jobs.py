"""Prometheus scrape job names (the stack's scrape config and the alert rules share them)."""

API_JOB = "orchestrator-api"
AGENT_JOB = "orchestrator-agent"
RABBITMQ_JOB = "rabbitmq"
ORCHESTRATOR_JOBS = f"{API_JOB}|{AGENT_JOB}"
