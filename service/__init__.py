"""The orchestrator service: settings, names, the metric catalog and telemetry, PostgreSQL,
RabbitMQ, Redis, the HTTP API and the worker runtime (``worker/``) that runs agents.

May import: ``agents`` (the agent SDK: registry, context, errors, retry policy); never a layer
above it (``alerts``, ``dashboards``, ``stack``, ``loadtest`` or the composition root).
"""
