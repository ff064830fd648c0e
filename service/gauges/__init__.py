"""Gauges read from the resources a process holds: its own health every second (``probe``: pool,
broker, Redis, event-loop lag, slots) and, in the API, the system's state at scrape time
(``sampler``: tasks by status, backlogs, queue depths, live agents). Above the database, broker
and cache layers they read; ``service.telemetry`` below them only exports and traces."""
