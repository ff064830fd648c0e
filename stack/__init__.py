"""The bundled monitoring stack: compose file and Prometheus config for Docker users, and the
native runner (``orchestrator stack``) for machines without Docker."""
