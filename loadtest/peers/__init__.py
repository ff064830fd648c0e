"""The peer benchmark: this project beside Celery and Dramatiq on the same no-op workload, in one
run, interleaved, with the physical ceiling of a tight durable loop (``python -m
loadtest.peers``; the ``peers`` extra brings Celery and Dramatiq)."""
