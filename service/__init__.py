"""The orchestrator service: settings, names, the metric catalog and telemetry, PostgreSQL,
RabbitMQ, Redis, and the HTTP API.

May import: ``agents`` (the agent registry, for the types the API accepts) and ``alerts`` (the
runbook page the API serves); never ``dashboards``, ``stack``, ``loadtest`` or the composition
root ``orchestrator``.
"""
