"""Signatures of completion callbacks, the way Stripe signs webhooks: the header
``Orchestrator-Signature: t=<unix time>,v1=<hex>`` carries HMAC-SHA256 over ``"<t>." + body``
with the tenant's secret (one ``v1`` per secret in use: after a rotation the previous one signs
too for a while). A receiver recomputes it and refuses a stale ``t`` (replays)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "Orchestrator-Signature"
SECRET_PREFIX = "whsec_"
TOLERANCE_S = 300.0


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets_in_use: Sequence[str], timestamp: int | None = None) -> str:
    """The signature header's value for ``body``."""
    at = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={at}", *(f"v1={_mac(s, at, body)}" for s in secrets_in_use)])


def verify(body: bytes, header: str, secret: str, tolerance_s: float = TOLERANCE_S,
           now: float | None = None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of now."""
    parts = [p.partition("=") for p in header.split(",")]
    stamps = [v for k, _, v in parts if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    at = int(stamps[0])
    if abs((time.time() if now is None else now) - at) > tolerance_s:
        return False
    expected = _mac(secret, at, body)
    return any(hmac.compare_digest(expected, v) for k, _, v in parts if k == "v1")
