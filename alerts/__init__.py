"""Thresholds, SLOs, scenarios and runbook entries as data; renders the Prometheus rules, their
promtool tests, alertmanager.yml and the runbook.

May import: ``catalog`` (metrics, names, jobs, panels) and ``service`` (its settings, for the
deployment's links).
"""
