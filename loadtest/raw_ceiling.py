"""The raw ceiling: the least a durable task system must do per task on this machine, written
tightly, with no orchestrator code.

Per task: a row inserted (a hundred per statement), a persistent message published with a
publisher confirm (confirms pipelined, not awaited one by one), consumed, the row marked running
and then succeeded (one statement per batch of deliveries each) and the delivery acked after the
commit. Nothing an orchestrator adds (HTTP, a timeline, retries, metrics). The pipeline and peer
benchmarks divide their rates by this one.

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
BATCH = 100
PRODUCERS = 4
PREFETCH = 512
_INSERT = ("INSERT INTO tasks (id, agent, input, status, max_attempts, timeout_s, input_checksum)"
           " SELECT id, 'echo', input, 'queued', 3, 60, 'x'"
           " FROM unnest(%s::uuid[], %s::jsonb[]) AS i(id, input)")
_RUNNING = "UPDATE tasks SET status = 'running', started_at = now() WHERE id = ANY(%s::uuid[])"
_DONE = ("UPDATE tasks SET status = 'succeeded', result = input, finished_at = now()"
         " WHERE id = ANY(%s::uuid[])")


async def measure(tasks: int) -> float:
    """Tasks per second, first insert to last ack."""
    settings = bench_settings()
    await ensure_database(settings.database)
    pool = await open_pool(settings.with_overrides(db_pool_max=PRODUCERS + 4).database,
                           name="raw-ceiling")
    await migrate(pool)
    async with pool.connection() as conn:
        await conn.execute("TRUNCATE tasks CASCADE")
    connection = await aio_pika.connect(settings.broker.urls[0])
    publish = await connection.channel(publisher_confirms=True)
    consume = await connection.channel()
    await consume.set_qos(prefetch_count=PREFETCH)
    queue = await consume.declare_queue(QUEUE, durable=True,
                                        arguments={"x-queue-type": "quorum"})
    await queue.purge()
    inbox: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
    tag = await queue.consume(inbox.put)

    async def run_batches() -> None:
        finished = 0
        while finished < tasks:
            batch = [await inbox.get()]
            while not inbox.empty():
                batch.append(inbox.get_nowait())
            ids = [m.body.decode() for m in batch]
            async with pool.connection() as conn:
                await conn.execute(_RUNNING, (ids,))
            async with pool.connection() as conn:
                await conn.execute(_DONE, (ids,))
            await batch[-1].ack(multiple=True)
            finished += len(batch)

    async def produce(numbers: list[int]) -> None:
        for start in range(0, len(numbers), BATCH):
            chunk = numbers[start:start + BATCH]
            ids = [str(uuid.uuid4()) for _ in chunk]
            async with pool.connection() as conn:
                await conn.execute(_INSERT, (ids, [Jsonb({"n": n}) for n in chunk]))
            await asyncio.gather(*(publish.default_exchange.publish(
                aio_pika.Message(i.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=QUEUE) for i in ids))

    started = time.perf_counter()
    consumer = asyncio.create_task(run_batches())
    numbers = list(range(tasks))
    await asyncio.gather(*(produce(numbers[p::PRODUCERS]) for p in range(PRODUCERS)))
    await asyncio.wait_for(consumer, 600)
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
