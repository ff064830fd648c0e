"""The worker runtime: consume, run, ack, retry, dead-letter, heartbeat."""

from agents.runtime.worker import Worker

__all__ = ["Worker"]
