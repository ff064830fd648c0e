"""Why the stack cannot start or stop; each message says what to do about it."""

from __future__ import annotations


class StackError(RuntimeError):
    """The stack cannot start; the message says what is missing and how to get it."""


class AlreadyRunning(StackError):
    """A stack from the same state folder runs; a second one would take its record."""
