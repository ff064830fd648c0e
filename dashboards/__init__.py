"""Grafana dashboards as Python (grafana-foundation-sdk), rendered to JSON."""
