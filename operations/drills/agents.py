"""Agents that misbehave on purpose for the drills (the drill stack's workers load them with
``ORCH_AGENT_MODULES``): one that leaks memory, one that holds file descriptors open."""

from __future__ import annotations

import os
from typing import Any

from agents.context import TaskContext
from agents.registry import agent

_LEAKED: list[bytearray] = []
_HELD: list[int] = []


@agent("leak")
async def leak(payload: Any, ctx: TaskContext) -> dict[str, int]:
    """Keep ``{"mib": n}`` more MiB alive in this process, for good (a leak)."""
    mib = int(payload.get("mib", 50)) if isinstance(payload, dict) else 50
    chunk = bytearray(mib * 2**20)
    chunk[::4096] = b"x" * len(chunk[::4096])  # touch every page: resident, not just reserved
    _LEAKED.append(chunk)
    return {"leaked_mib": sum(len(c) for c in _LEAKED) // 2**20}


@agent("hold-fds")
async def hold_fds(payload: Any, ctx: TaskContext) -> dict[str, int]:
    """Open ``{"count": n}`` more file descriptors and keep them (a descriptor leak);
    ``{"release": true}`` closes them all."""
    if isinstance(payload, dict) and payload.get("release"):
        while _HELD:
            os.close(_HELD.pop())
        return {"held": 0}
    count = int(payload.get("count", 100)) if isinstance(payload, dict) else 100
    for _ in range(count):
        _HELD.append(os.open(os.devnull, os.O_RDONLY))
    return {"held": len(_HELD)}
