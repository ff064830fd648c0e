"""Thresholds, SLOs, scenarios and runbook entries as data; renders the Prometheus rules, their
promtool tests, alertmanager.yml and the runbook.

May import: ``service`` (the metric catalog, names and settings).
"""
