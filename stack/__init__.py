"""The bundled monitoring stack: compose file and Prometheus config for Docker users, the native
runner (``orchestrator stack``) for machines without Docker, and the process supervisor with its
record on disk.

May import: ``alerts`` (rules, Alertmanager config, links), ``catalog`` and ``service``.
"""
