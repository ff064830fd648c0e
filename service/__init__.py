"""The orchestrator service: settings, logs and traces, PostgreSQL, RabbitMQ, Redis, the HTTP API
and the worker runtime (``worker/``) that runs agents.

May import: ``catalog`` (names, the metric catalog) and ``agents`` (the agent SDK: registry,
context, errors, retry policy); never a layer above it (``alerts``, ``dashboards``, ``stack``,
``loadtest`` or the composition root).
"""
