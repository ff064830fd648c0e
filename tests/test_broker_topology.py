"""The topology against the real RabbitMQ: every queue a task can be in is a quorum queue with
its replication factor and at-least-once dead-lettering; queues an earlier release made are
taken as they are and its classic delay queues retired; a connection over a list of nodes moves
to the next node each time it loses one."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from catalog import names
from service.broker.connection import connect
from service.broker.topology import DELAY_STEPS_MS, Topology
from service.settings import BrokerSettings
from tests.services import Env

pytestmark = pytest.mark.integration


def queue_arguments(vhost: str) -> dict[str, dict[str, Any]]:
    """name -> (type, arguments) of every queue of ``vhost``, as the broker reports them."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "--formatter",
                          "json", "name", "type", "arguments"], capture_output=True, text=True,
                         check=True, timeout=60)
    return {q["name"]: {"type": q["type"], **{a[0]: a[2] for a in q["arguments"]}}
            for q in json.loads(out.stdout)}


async def test_queues_are_replicated_quorum_queues_dead_lettering_at_least_once(
        own_env: Env) -> None:
    broker = own_env.settings.broker
    connection = await connect(broker, "topology-test")
    try:
        topology = Topology(connection, await connection.channel(), broker)
        await topology.declare_core()
        await topology.declare_agent_queues("echo")
        await topology.declare_delay_queue(DELAY_STEPS_MS[0])
    finally:
        await connection.close()
    queues = queue_arguments(own_env.name)
    for name in (*names.agent_queues("echo"), names.delay_queue(DELAY_STEPS_MS[0])):
        assert queues[name]["type"] == "quorum", name
        assert queues[name]["x-quorum-initial-group-size"] == broker.quorum_group_size
        assert queues[name]["x-dead-letter-strategy"] == "at-least-once"
        assert queues[name]["x-overflow"] == "reject-publish"
    assert queues[names.agent_queue("echo")]["x-delivery-limit"] == broker.delivery_limit
    assert queues[names.DEAD_LETTER_QUEUE]["type"] == "quorum"


async def test_an_earlier_releases_queues_are_kept_and_its_classic_delay_queue_retired(
        own_env: Env) -> None:
    broker = own_env.settings.broker
    step = DELAY_STEPS_MS[4]  # 500 ms
    old = await aio_pika.connect(broker.url)
    channel = await old.channel()
    # Given the queues as the last release declared them, a delayed message in the classic one
    await channel.declare_queue(names.agent_queue("echo"), durable=True, arguments={
        "x-queue-type": "quorum", "x-delivery-limit": broker.delivery_limit,
        "x-dead-letter-exchange": names.DEAD_EXCHANGE})
    delay = await channel.declare_exchange(names.DELAY_EXCHANGE, aio_pika.ExchangeType.HEADERS,
                                           durable=True)
    await channel.declare_exchange(names.WORK_EXCHANGE, aio_pika.ExchangeType.DIRECT,
                                   durable=True)
    legacy = await channel.declare_queue(names.legacy_delay_queue(step), durable=True, arguments={
        "x-message-ttl": step, "x-dead-letter-exchange": names.WORK_EXCHANGE})
    match = {"x-match": "all", names.DELAY_HEADER: step}
    await legacy.bind(delay, arguments=match)
    await delay.publish(aio_pika.Message(b"old", headers={names.DELAY_HEADER: step}),
                        routing_key=names.routing_key("echo"))
    await old.close()
    # When this release declares its topology (twice: a restart)
    for expected in ([b"new", b"old"], [b"new"]):
        connection = await connect(broker, "upgrade-test")
        topology = Topology(connection, await connection.channel(), broker)
        await topology.declare_core()
        queues = await topology.declare_agent_queues("echo")
        await topology.declare_delay_queue(step)
        await topology.exchanges[names.DELAY_EXCHANGE].publish(
            aio_pika.Message(b"new", headers={names.DELAY_HEADER: step}),
            routing_key=names.routing_key("echo"))
        await asyncio.sleep(1.2)  # both messages expire into the agent's queue by now
        bodies = []
        while (message := await queues[0].get(fail=False, no_ack=True)) is not None:
            bodies.append(message.body)
        await connection.close()
        # Then the old agent queue serves as it is, and every delayed message arrives once
        assert sorted(bodies) == expected
    present = queue_arguments(own_env.name)
    assert names.legacy_delay_queue(step) not in present  # empty by the restart: deleted
    assert "x-quorum-initial-group-size" not in present[names.agent_queue("echo")]


def _close_from_the_broker(name: str) -> None:
    out = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                         capture_output=True, text=True, check=True, timeout=60)
    [pid] = [line.split("\t")[0] for line in out.stdout.splitlines() if name in line]
    subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "node lost (test)"],
                   check=True, capture_output=True, timeout=60)


async def _reconnected(connection: AbstractRobustConnection, timeout_s: float = 30) -> None:
    for _ in range(int(timeout_s / 0.1)):
        await asyncio.sleep(0.1)
        if connection.connected.is_set():
            return
    raise AssertionError("did not reconnect")


async def test_a_connection_over_a_node_list_moves_to_the_next_node_each_time_it_loses_one(
        own_env: Env) -> None:
    one = own_env.settings.broker.url
    other = one.replace("127.0.0.1", "localhost")
    down = "amqp://guest:guest@127.0.0.1:1/"  # a node that is down: skipped, at start too
    broker = BrokerSettings(url=f"{down}, {one}, {other}")
    connection = await connect(broker, "node-list-test")
    try:
        hosts = [connection.url.host]
        for _ in range(2):
            await asyncio.to_thread(_close_from_the_broker, "node-list-test")
            await asyncio.sleep(0.2)
            await _reconnected(connection)
            hosts.append(connection.url.host)
        channel = await connection.channel()
        await channel.declare_queue("", exclusive=True)  # and it works on the node it is on
    finally:
        await connection.close()
    # the first that answered; the next; then past the one that is down, round to the first
    assert hosts == ["127.0.0.1", "localhost", "127.0.0.1"]
