"""One peer round's producer, in a process of its own (the peer's client library configured by
the round's ``peers_config``): submit N no-op tasks from 8 threads, wait until all are done,
print the rate as JSON. With a third argument (Celery only) the tasks sleep that many seconds.

    python -m loadtest.peers.produce celery|dramatiq N [SLEEP_S]
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import peers_config

THREADS = 8
POLL_S = 0.02


def _done(system: str) -> int:
    """How many tasks have finished, as the round's completion record says."""
    if peers_config.DONE == "postgresql":
        import psycopg

        with psycopg.connect(peers_config.DATABASE_URL, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM celery_taskmeta"
                               " WHERE status = 'SUCCESS'").fetchone()
            return int(row[0]) if row else 0
    import redis

    client = redis.Redis.from_url(peers_config.REDIS_URL)
    if peers_config.DONE == "redis-keys":
        return int(client.dbsize())
    return int(client.get(peers_config.DONE_KEY) or 0)


def main(argv: list[str]) -> int:
    system, tasks = argv[0], int(argv[1])
    send: Any
    if system == "celery" and len(argv) > 2:
        from loadtest.peers.celery_app import sleep

        seconds = float(argv[2])
        send = lambda n: sleep.delay(seconds)  # noqa: E731
    elif system == "celery":
        from loadtest.peers.celery_app import noop

        send = noop.delay
    else:
        from loadtest.peers.dramatiq_app import noop

        send = noop.send
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(send, range(tasks)))
    submitted = time.perf_counter()
    while _done(system) < tasks:
        time.sleep(POLL_S)
        if time.perf_counter() - started > 900:
            print(json.dumps({"error": f"only {_done(system)} of {tasks} done"}))
            return 1
    elapsed = time.perf_counter() - started
    print(json.dumps({"rate": tasks / elapsed, "submit_s": submitted - started,
                      "elapsed_s": elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
