"""``/v1/agents``: agent types and the workers serving them."""

from __future__ import annotations

from collections import Counter
from typing import Any

from litestar import Request, get

from agents.registry import get_agent
from catalog import names
from service.api.openapi import problems
from service.api.schemas import AgentLimits, AgentsOut, AgentType
from service.api.state import Services
from service.worker.flow import resolve_limits


@get("/v1/agents", opt={"scope": "tasks:read"}, tags=["agents"], responses=problems(),
     summary="Agent types and live workers (Redis heartbeats; PostgreSQL when Redis is down)")
async def list_agents(request: Request[Any, Any, Any]) -> AgentsOut:
    services: Services = request.app.state.services
    workers = await services.cache.heartbeats()
    source = "redis"
    if workers is None:
        workers = [_jsonable(w) for w in
                   await services.workers.live(services.settings.worker.heartbeat_ttl_s)]
        source = "postgresql"
    per_agent = Counter(agent for w in workers for agent in w.get("agents", []))
    limits = _limits(services)
    types = []
    for name in services.agents:
        spec = get_agent(name)
        types.append(AgentType(name, spec.description if spec else "", names.agent_queue(name),
                               list(names.agent_queues(name)), per_agent[name], limits[name]))
    shown = workers if request.state.api_key.is_admin else []  # hosts and pids: operators'
    return AgentsOut(types, sorted(shown, key=lambda w: str(w.get("worker_id"))), source)


def _limits(services: Services) -> dict[str, AgentLimits]:
    """Each agent type's limits; the declared ones when ``ORCH_AGENT_LIMITS`` cannot be read
    here (the workers refuse to start with it, saying why)."""
    try:
        resolved = resolve_limits(services.agents, services.settings.worker.agent_limits)
    except ValueError:
        resolved = resolve_limits(services.agents, "")
    return {agent: AgentLimits(str(lim.rate) if lim.rate else None,
                               str(lim.tokens) if lim.tokens else None,
                               lim.concurrency, lim.per_key)
            for agent, lim in resolved.items()}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
