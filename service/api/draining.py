"""Long answers (task streams) end when the server begins to shut down, instead of holding the
shutdown until its grace period ends: their clients reconnect, to another server or to this
one restarted, and resume where they were (``Last-Event-ID``)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state = {"draining": False}


def draining() -> bool:
    """The server was told to stop."""
    return _state["draining"]


def drain_on_exit_signals() -> Callable[[], None]:
    """Chain a handler before the server's own for SIGINT and SIGTERM (uvicorn installs its own
    with ``signal.signal`` before the app starts); returns what puts the server's back."""
    _state["draining"] = False
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}

    def handler(sig: int, frame: FrameType | None) -> None:
        _state["draining"] = True
        chained: Any = previous[signal.Signals(sig)]
        if callable(chained):
            chained(sig, frame)
        else:  # the default (or ignore): as if this handler had never been there
            signal.signal(sig, chained)
            signal.raise_signal(sig)

    for sig in _SIGNALS:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, old)
    return restore
