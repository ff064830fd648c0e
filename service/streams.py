"""Task streams: the progress and partial output an agent reports while it runs, kept in Redis.

One Redis stream per task (``XADD``, trimmed to ``ORCH_STREAM_MAX_ENTRIES``, expiring
``ORCH_STREAM_TTL_S`` after its last entry). A stream is a live view: the result and the timeline
in PostgreSQL stay the record. When Redis cannot take an entry the agent goes on and the entry is
counted as dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from catalog import metrics
from service.cache import Cache
from service.settings import Settings

StreamKind = Literal["progress", "output"]  # metrics.STREAM_KINDS
FIRST_ID = "0-0"
"""Before the first entry of every stream."""

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class StreamEntry:
    """One entry: its stream id (``<ms>-<seq>``, Redis time), what it is, and its data."""

    id: str
    kind: StreamKind
    data: dict[str, Any]

    @property
    def at_ms(self) -> int:
        return int(self.id.partition("-")[0])


class TaskStreams:
    """Appends to and reads the task streams, through the cache's Redis client."""

    def __init__(self, cache: Cache, *, ttl_s: int, max_entries: int,
                 max_entry_bytes: int = 65_536) -> None:
        self.cache = cache
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes

    @classmethod
    def of(cls, cache: Cache, settings: Settings) -> TaskStreams:
        return cls(cache, ttl_s=settings.redis.stream_ttl_s,
                   max_entries=settings.redis.stream_max_entries,
                   max_entry_bytes=settings.tasks.max_stream_entry_bytes)

    async def append(self, task_id: str, agent: str, kind: StreamKind,
                     data: dict[str, Any]) -> bool:
        """Add one entry (one round trip: the entry, the trim and the expiry); False when Redis
        did not take it. ``TypeError``: the data has no JSON form; ``ValueError``: larger than
        ``ORCH_STREAM_MAX_ENTRY_BYTES``."""
        key = self.cache.keys.stream(task_id)
        document = _encode(data)
        if len(document) > self.max_entry_bytes:
            raise ValueError(f"a {kind} entry of {len(document)} bytes (as JSON) is larger than"
                             f" ORCH_STREAM_MAX_ENTRY_BYTES ({self.max_entry_bytes}): emit it"
                             " in smaller pieces")

        async def write() -> bool:
            async with self.cache.client.pipeline(transaction=False) as pipe:
                pipe.xadd(key, {"kind": kind, "data": document},
                          maxlen=self.max_entries, approximate=True)
                pipe.expire(key, self.ttl_s)
                await pipe.execute()
            return True

        written = await self.cache.guarded(write, False)
        metrics.STREAM_ENTRIES.labels(agent, kind, "written" if written else "dropped").inc()
        return written

    async def read(self, task_id: str, after: str, count: int = 500) -> list[StreamEntry] | None:
        """The entries after stream id ``after``, oldest first; ``None`` when Redis cannot say."""
        key = self.cache.keys.stream(task_id)
        rows = await self.cache.guarded(
            lambda: self.cache.client.xrange(key, min=f"({after}", count=count), None)
        if rows is None:
            return None
        return [_entry(raw_id, fields) for raw_id, fields in rows if raw_id and fields]


def _entry(raw_id: bytes | str, fields: dict[Any, Any]) -> StreamEntry:
    kind = fields[b"kind"].decode()
    return StreamEntry(raw_id.decode() if isinstance(raw_id, bytes) else raw_id,
                       "progress" if kind == "progress" else "output",
                       msgspec.json.decode(fields[b"data"]))
