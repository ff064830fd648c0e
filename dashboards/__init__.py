"""Grafana dashboards as Python (grafana-foundation-sdk, the ``render`` extra), rendered to JSON.

May import: ``alerts`` (thresholds, SLOs), ``catalog`` (metrics, jobs, panels) and ``service``.
"""
