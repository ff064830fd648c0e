"""The worker runtime: consume, run, ack, retry, dead-letter, heartbeat."""

from service.worker.worker import Worker

__all__ = ["Worker"]
