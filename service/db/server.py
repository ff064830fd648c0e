"""Facts about the PostgreSQL server itself (not the task tables): where it keeps its data, its
connections, long transactions and lock waits. Read by the disk gauge and by the doctor."""

from __future__ import annotations

from typing import Any

import psycopg

from service.db.query import Store

_LONG_TRANSACTIONS = (
    "SELECT pid, state, extract(epoch FROM now() - xact_start) AS age_s,"
    " left(query, 120) AS query FROM pg_stat_activity"
    " WHERE datname = current_database() AND xact_start IS NOT NULL"
    " AND pid <> pg_backend_pid() AND now() - xact_start > make_interval(secs => %s)"
    " ORDER BY xact_start LIMIT 10"
)
_LOCK_WAITS = (
    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
    " AND wait_event_type = 'Lock'"
)
_CONNECTIONS = (
    "SELECT count(*) AS used, current_setting('max_connections')::int AS max"
    " FROM pg_stat_activity"
)


class ServerStats(Store):
    async def data_directory(self) -> str | None:
        """The server's data folder; ``None`` when this role may not read it."""
        try:
            row = await self.fetch_one("server_data_directory",
                                       "SELECT current_setting('data_directory') AS path")
        except psycopg.errors.InsufficientPrivilege:
            return None
        return str(row["path"]) if row else None

    async def long_transactions(self, older_than_s: float) -> list[dict[str, Any]]:
        """Transactions open longer than ``older_than_s`` in this database (oldest first)."""
        return await self.fetch_all("server_long_transactions", _LONG_TRANSACTIONS,
                                    (older_than_s,))

    async def lock_waits(self) -> int:
        row = await self.fetch_one("server_lock_waits", _LOCK_WAITS)
        return int(row["n"]) if row else 0

    async def connections(self) -> tuple[int, int]:
        """``(connections open on the server, max_connections)``."""
        row = await self.fetch_one("server_connections", _CONNECTIONS)
        assert row is not None
        return int(row["used"]), int(row["max"])
