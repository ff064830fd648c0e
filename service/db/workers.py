"""The worker registry in PostgreSQL: the fallback view of live agents when Redis is down."""

from __future__ import annotations

from typing import Any

from service.db.query import Store

_UPSERT = (
    "WITH seen AS (INSERT INTO agent_types (agent) SELECT unnest(%(agents)s::text[])"
    " ON CONFLICT DO NOTHING)"
    " INSERT INTO workers (worker_id, agents, hostname, pid, concurrency, in_flight, last_seen)"
    " VALUES (%(worker_id)s, %(agents)s, %(hostname)s, %(pid)s, %(concurrency)s,"
    " %(in_flight)s, now())"
    " ON CONFLICT (worker_id) DO UPDATE SET in_flight = EXCLUDED.in_flight,"
    " agents = EXCLUDED.agents, last_seen = now()"
)
_LIVE = (
    "SELECT worker_id, agents, hostname, pid, concurrency, in_flight, started_at, last_seen"
    " FROM workers WHERE last_seen > now() - make_interval(secs => %s) ORDER BY worker_id"
)


_AGE_BY_AGENT = (
    "SELECT a.agent, count(*) FILTER (WHERE last_seen > now() - make_interval(secs => %s))"
    " AS live, extract(epoch FROM now() - min(last_seen)) AS oldest_beat_s"
    " FROM workers, unnest(agents) AS a(agent)"
    " WHERE last_seen > now() - interval '10 minutes' GROUP BY a.agent"
)


class WorkerRegistry(Store):
    """Workers (with their heartbeats) and the agent types that have had one."""

    async def beat(self, beat: dict[str, Any]) -> None:
        await self.run("worker_beat", _UPSERT, beat)

    async def remove(self, worker_id: str) -> None:
        await self.run("worker_remove", "DELETE FROM workers WHERE worker_id = %s", (worker_id,))

    async def live(self, ttl_s: float) -> list[dict[str, Any]]:
        return await self.fetch_all("worker_live", _LIVE, (ttl_s,))

    async def prune(self, older_than_s: float = 86400) -> None:
        """Forget workers that vanished without deregistering (killed) a day ago."""
        await self.run("worker_prune", "DELETE FROM workers WHERE last_seen <"
                       " now() - make_interval(secs => %s)", (older_than_s,))

    async def by_agent(self, ttl_s: float) -> list[dict[str, Any]]:
        """Per agent type: live workers and the oldest heartbeat seen in the last 10 minutes."""
        return await self.fetch_all("worker_ages", _AGE_BY_AGENT, (ttl_s,))

    async def deployed_types(self) -> list[str]:
        """Agent types a worker has served (each beat records its types), until retired."""
        rows = await self.fetch_all("agent_types", "SELECT agent FROM agent_types ORDER BY 1")
        return [row["agent"] for row in rows]

    async def retire(self, agent: str) -> bool:
        """Stop expecting a worker for ``agent`` (False when it was not expected)."""
        rows = await self.fetch_all("agent_retire", "DELETE FROM agent_types WHERE agent = %s"
                                    " RETURNING agent", (agent,))
        return bool(rows)
