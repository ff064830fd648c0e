"""The one scrubber: secrets masked in any text before it leaves the process (log lines, span
attributes and events, task errors, HTTP error bodies).

It recognises the shapes secrets take here: passwords in URLs (``postgresql://u:pw@h``,
``redis://:pw@h``, ``https://user:pw@h``), ``password=...`` and its kin (libpq conninfo strings,
JSON, headers), ``Authorization`` headers (Basic, Bearer, ...), bearer tokens, our API keys
(``orch_...``), OpenAI-style keys (``sk-...``) and JWTs. What it cannot recognise (a user's
input) must not be put into such texts at all: error texts name types and lengths, not values.
"""

from __future__ import annotations

import re

__all__ = ["error_text", "scrub", "strip_query"]

MASK = "***"
_KEY_NAMES = r"[\w-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|routing[_-]?key)"
_SECRETS = (
    # the credentials of an Authorization header, whatever their scheme
    (re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?)(?:(basic|bearer|token|digest)"
                r"\s+)?+(?!<)[^\s\"',;]+"),  # (not a placeholder such as <key>)
     lambda m: f"{m[1]}{m[2] + ' ' if m[2] else ''}{MASK}"),
    # a password in a URL's user info (the user name stays); up to the host's "@" even when
    # the password holds an unencoded "@" or "/"
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/?#@\s]*):(?:[^\s/?#]*@|[^@\s]*@)"),
     rf"\1:{MASK}@"),
    # password=..., "token": "...", api-key: ... (quoted values may hold spaces)
    (re.compile(rf"(?i)\b({_KEY_NAMES})\b([\"']?\s*[:=]\s*)"
                r"(?!<)(?:\"[^\"]*\"|'[^']*'|[^\s&,;\"'}]+)"),
     lambda m: f"{m[1]}{m[2]}{_quoted(m[0], m[2])}"),
    (re.compile(r"\bBasic\s+(?=[A-Za-z0-9+/]*[0-9+/=])[A-Za-z0-9+/]{8,}={0,2}"), f"Basic {MASK}"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1{MASK}"),
    (re.compile(r"\borch_[A-Za-z0-9_-]{20,}"), f"orch_{MASK}"),  # our API keys
    (re.compile(r"\bsk-[A-Za-z0-9_-]{20,}"), f"sk-{MASK}"),  # OpenAI-style keys
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), f"eyJ{MASK}"),
)


def _quoted(match: str, separator: str) -> str:
    """The mask, in the quotes the masked value had."""
    value = match[match.index(separator) + len(separator):] if separator else ""
    quote = value[:1] if value[:1] in "\"'" else ""
    return f"{quote}{MASK}{quote}"


def scrub(text: str) -> str:
    """The text with every secret shape this module knows masked (scrubbing twice changes
    nothing more)."""
    if not text:
        return text
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def strip_query(url: str) -> str:
    """A URL or request target without its query string and fragment (``/v1/tasks?x=1`` ->
    ``/v1/tasks``): a query may carry tokens, and spans need only the path."""
    return url.split("?", 1)[0].split("#", 1)[0]


def error_text(exc: BaseException, limit: int = 2000) -> str:
    """``Type: message`` of an exception, scrubbed and at most ``limit`` characters, for a
    stored task error or a log line."""
    text = scrub(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= limit else text[:limit - 1] + "…"
