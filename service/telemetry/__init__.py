"""Telemetry in one place: the metric catalog, exposition, traces and logs."""
