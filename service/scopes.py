"""What an API key may do: its scopes (checked by the API's guard)."""

from __future__ import annotations

SCOPES = {
    "tasks:read": "read, list and follow the tenant's tasks",
    "tasks:write": "submit, cancel and requeue the tenant's tasks",
    "tasks:priority": "submit above the default priority ceiling",
    "queues:read": "the backlog of every agent type (GET /v1/admin/queue-stats, for autoscalers)",
    "admin": "every tenant's tasks, the keys, the operator views",
}
DEFAULT_SCOPES = ("tasks:write", "tasks:read")
DEV_SCOPES = ("tasks:write", "tasks:read", "tasks:priority", "admin")
"""The local runner's development key: the CLI's operator commands need ``admin``."""
