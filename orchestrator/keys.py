"""``orchestrator keys create|list|revoke|rotate``: API keys, straight in the database (the
operator on the machine; ``/v1/admin/keys`` does the same over HTTP for admin keys)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from orchestrator.output import print_json, print_table
from service.durations import duration_s
from service.errors import KeyProblem
from service.scopes import DEFAULT_SCOPES, SCOPES
from service.settings import Settings

if TYPE_CHECKING:  # the store loads prometheus-client: not at import time (see run_api)
    from service.db.keys import KeyStore

T = TypeVar("T")
COLUMNS = ("name", "tenant", "scopes", "created_at", "expires_at", "last_used_at",
           "rate_limit", "max_active_tasks")


def add_arguments(keys: argparse.ArgumentParser) -> None:
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create an API key and print it once")
    create.add_argument("name", help="the key's name (letters, digits, . _ -)")
    create.add_argument("--scopes", default=",".join(DEFAULT_SCOPES),
                        help=f"comma-separated, of: {', '.join(SCOPES)}")
    create.add_argument("--tenant", help="whose tasks the key submits and sees (default: a"
                                         " tenant of its own, named as the key)")
    create.add_argument("--expires-in", metavar="DURATION", help="e.g. 30d, 12h (default: never)")
    create.add_argument("--rate-limit", metavar="RATE",
                        help="requests of its tenant, e.g. 50/s (default: ORCH_RATE_LIMIT)")
    create.add_argument("--max-active-tasks", type=int, metavar="N", help="unfinished tasks"
                        " of its tenant (default: ORCH_TENANT_MAX_ACTIVE_TASKS)")
    listing = actions.add_parser("list", help="the live keys (never their values)")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    actions.add_parser("revoke", help="stop a key at once (every API within"
                                      " ORCH_KEY_CACHE_TTL_S)").add_argument(
        "name", help="the key's name")
    actions.add_parser("rotate", help="a new value for a key; the old one stops working"
                                      ).add_argument("name", help="the key's name")
    for child in actions.choices.values():  # after the action too; SUPPRESS keeps a --json
        child.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                           help="machine-readable output")  # given before it


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return _run(settings, args)
    except (KeyProblem, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from service.db.keys import KeySpec

    action = args.keys_command
    if action == "create":
        spec = KeySpec(args.name, tuple(x.strip() for x in args.scopes.split(",") if x.strip()),
                       args.tenant, duration_s(args.expires_in) if args.expires_in else None,
                       args.rate_limit, args.max_active_tasks)
        value, key = _with_store(settings, lambda store: store.create(spec))
        return _shown(key.as_json(), value, args.json)
    if action == "rotate":
        value, key = _with_store(settings, lambda store: store.rotate(args.name))
        return _shown(key.as_json(), value, args.json)
    if action == "revoke":
        revoked = _with_store(settings, lambda store: store.revoke(args.name))
        if args.json:
            print_json(revoked.as_json())
        else:
            print(f"revoked {revoked.name} (tenant {revoked.tenant})")
        return 0
    keys = _with_store(settings, lambda store: store.list(include_revoked=args.all))
    rows = [k.as_json() for k in keys]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, (*COLUMNS, "revoked_at") if args.all else COLUMNS)
    return 0


def _shown(key: dict[str, Any], value: str, as_json: bool) -> int:
    """The key's value, once: alone on stdout (scripts read the last line), or as JSON."""
    if as_json:
        print_json({**key, "key": value})
    else:
        print(f"created key {key['name']} (tenant {key['tenant']}, scopes"
              f" {','.join(key['scopes'])}); it is shown only now:", file=sys.stderr)
        print(value)
    return 0


def _with_store(settings: Settings, action: Callable[[KeyStore], Awaitable[T]]) -> T:
    from service.db.keys import KeyStore
    from service.db.migrate import migrated_pool

    async def go() -> T:
        async with migrated_pool(settings.database, "keys") as pool:
            return await action(KeyStore(pool))
    return asyncio.run(go())
