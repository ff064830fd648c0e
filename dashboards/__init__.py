"""Grafana dashboards as Python (grafana-foundation-sdk, the ``render`` extra), rendered to JSON.

May import: ``alerts`` (panels, thresholds, SLOs) and ``service`` (the metric catalog).
"""
