"""Opening the AMQP connection, with one clear error when RabbitMQ does not answer."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from service.db.pool import redact
from service.errors import DependencyUnavailable
from service.settings import Settings

RABBITMQ_HINT = "Start it with: rabbitmq-server -detached && rabbitmqctl await_startup"


async def connect(settings: Settings, name: str) -> AbstractRobustConnection:
    """A robust connection (reconnects and restores topology and consumers by itself)."""
    try:
        return await aio_pika.connect_robust(
            settings.amqp_url, client_properties={"connection_name": name}, timeout=10
        )
    except Exception as exc:
        raise DependencyUnavailable("RabbitMQ", redact(settings.amqp_url), RABBITMQ_HINT,
                                    exc) from exc
