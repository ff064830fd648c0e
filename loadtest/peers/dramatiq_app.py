"""The Dramatiq side of the peer benchmark: one no-op actor on RabbitMQ with publisher confirms;
each run counts itself done in Redis (Dramatiq keeps no result by default). Its URLs come from
``peers_config``, the module the benchmark writes for the round (``loadtest.peers.systems``)."""

from __future__ import annotations

from typing import Any

import dramatiq
import peers_config
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker

broker = RabbitmqBroker(url=peers_config.BROKER_URL, confirm_delivery=True)
dramatiq.set_broker(broker)
done = redis.Redis.from_url(peers_config.REDIS_URL)


@dramatiq.actor(actor_name="peers_noop", queue_name=peers_config.QUEUE, max_retries=0)
def noop(n: Any) -> None:
    done.incr(peers_config.DONE_KEY)
