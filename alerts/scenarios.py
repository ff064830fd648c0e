"""The incidents the operations guide describes; every one must be covered by an alert."""

from __future__ import annotations

from alerts.model import Scenario

API_DOWN = Scenario(1, "Application service down", "P1")
POOL_EXHAUSTION = Scenario(2, "Database connection pool exhaustion", "P1")
BROKER_DOWN = Scenario(3, "RabbitMQ broker down", "P1")
REDIS_DOWN = Scenario(4, "Redis cache down", "P2")
DATABASE_DOWN = Scenario(5, "Database completely unavailable", "P1")
HIGH_ERROR_RATE = Scenario(6, "High error rate / cascading failures", "P2")
PROCESSING_STALLED = Scenario(7, "Agent task processing stalled", "P2")
DATA_CORRUPTION = Scenario(8, "Data corruption detected", "P1")
MESSAGE_LOSS = Scenario(9, "Message loss detected", "P1")
MEMORY_LEAK = Scenario(10, "Memory leak causing OOM", "P2")
HIGH_LATENCY = Scenario(11, "High latency", "P2")
RESOURCE_EXHAUSTION = Scenario(12, "Disk or resource exhaustion", "P2")
AGENT_NOT_RESPONDING = Scenario(13, "Agent not responding", "P2")
DUPLICATES = Scenario(14, "Duplicate task processing", "P2")
DEAD_LETTER_GROWTH = Scenario(15, "Dead-letter queue growth", "P2")
MONITORING_GAP = Scenario(16, "Monitoring target missing", "P2")

ALL = (API_DOWN, POOL_EXHAUSTION, BROKER_DOWN, REDIS_DOWN, DATABASE_DOWN, HIGH_ERROR_RATE,
       PROCESSING_STALLED, DATA_CORRUPTION, MESSAGE_LOSS, MEMORY_LEAK, HIGH_LATENCY,
       RESOURCE_EXHAUSTION, AGENT_NOT_RESPONDING, DUPLICATES, DEAD_LETTER_GROWTH,
       MONITORING_GAP)
