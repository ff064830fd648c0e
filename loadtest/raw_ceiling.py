"""The raw ceiling: what PostgreSQL and RabbitMQ allow on this machine with no orchestrator code.

One asyncio script does, per task, what the pipeline must do at least: insert the row, publish it
persistently with a publisher confirm, consume it, update the row twice (running, succeeded) and
ack. The pipeline benchmark divides its end-to-end rate by this one.

    python -m loadtest.raw_ceiling --tasks 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid

import aio_pika
from psycopg.types.json import Jsonb

from loadtest.deployment import bench_settings
from service.db.migrate import migrate
from service.db.pool import ensure_database, open_pool

QUEUE = "raw.ceiling"
_INSERT = ("INSERT INTO tasks (id, agent, input, status, max_attempts, timeout_s, input_checksum)"
           " VALUES (%s, 'echo', %s, 'queued', 3, 60, 'x')")
_RUNNING = "UPDATE tasks SET status = 'running', started_at = now() WHERE id = %s"
_DONE = ("UPDATE tasks SET status = 'succeeded', result = input, finished_at = now()"
         " WHERE id = %s")


async def measure(tasks: int, producers: int = 32, prefetch: int = 64) -> float:
    """Tasks per second, first insert to last ack."""
    settings = bench_settings()
    await ensure_database(settings.database)
    pool = await open_pool(settings.with_overrides(db_pool_max=producers + prefetch).database,
                           name="raw-ceiling")
    await migrate(pool)
    async with pool.connection() as conn:
        await conn.execute("TRUNCATE tasks CASCADE")
    connection = await aio_pika.connect(settings.broker.url)
    publish = await connection.channel(publisher_confirms=True)
    consume = await connection.channel()
    await consume.set_qos(prefetch_count=prefetch)
    queue = await consume.declare_queue(QUEUE, durable=True,
                                        arguments={"x-queue-type": "quorum"})
    await queue.purge()
    done = asyncio.Event()
    finished = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal finished
        task_id = message.body.decode()
        async with pool.connection() as conn:
            await conn.execute(_RUNNING, (task_id,))
        async with pool.connection() as conn:
            await conn.execute(_DONE, (task_id,))
        await message.ack()
        finished += 1
        if finished == tasks:
            done.set()

    tag = await queue.consume(on_message)
    numbers = iter(range(tasks))

    async def produce() -> None:
        for n in numbers:
            task_id = str(uuid.uuid4())
            async with pool.connection() as conn:
                await conn.execute(_INSERT, (task_id, Jsonb({"n": n})))
            await publish.default_exchange.publish(
                aio_pika.Message(task_id.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=QUEUE)

    started = time.perf_counter()
    await asyncio.gather(*(produce() for _ in range(producers)))
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    await queue.cancel(tag)
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()
    await pool.close()
    return tasks / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    args = parser.parse_args(argv)
    rate = asyncio.run(measure(args.tasks))
    print(json.dumps({"raw_ceiling_tasks_per_s": round(rate, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
