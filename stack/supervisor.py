"""The supervisor behind ``orchestrator up`` and ``orchestrator stack up``, and its record on disk.

This module alone knows the record: ``stack.lock``, held (``flock``) by the running supervisor
for its whole life, so a second start from the same state folder refuses and names the running
one; and ``stack.json`` (the supervisor's pid, start time, URLs, every process with its pid and
log), which ``stack status`` and ``stack down`` read from any working folder. A child that exits
is reported, not restarted: a stopped agent is a fault the alerts must show and an operator fixes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from service.procinfo import alive
from stack.errors import AlreadyRunning, StackError
from stack.log_rotation import RotatingCopy

RECORD_FILE = "stack.json"
LOCK_FILE = "stack.lock"


@dataclass(frozen=True)
class Entry:
    """One supervised process."""

    name: str
    pid: int
    log: str = ""


@dataclass
class Record:
    """What a running stack wrote about itself."""

    supervisor: int
    started_at: float
    urls: dict[str, str] = field(default_factory=dict)
    processes: list[Entry] = field(default_factory=list)

    def describe(self) -> str:
        since = time.strftime("%H:%M:%S", time.localtime(self.started_at))
        api = f", API {self.urls['API']}" if "API" in self.urls else ""
        return f"supervisor pid {self.supervisor}, up since {since}{api}"


def load_record(folder: Path) -> Record | None:
    try:
        data = json.loads((folder / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return Record(data["supervisor"], data["started_at"], data.get("urls", {}),
                  [Entry(**entry) for entry in data.get("processes", [])])


def lock_holder(folder: Path) -> int | None:
    """The pid of the supervisor that holds ``folder``'s lock; ``None`` when none runs."""
    path = folder / LOCK_FILE
    if not path.exists():
        return None
    with path.open("r") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = lock.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(lock, fcntl.LOCK_UN)
    return None


class _Stop(BaseException):
    """SIGTERM arrived: unwind and stop everything (a ``BaseException``, like Ctrl-C)."""


class Supervisor:
    """Spawns and watches the processes; with a ``folder``, records them there under its lock.

    Use as a context manager: entering takes the lock (``AlreadyRunning`` if another supervisor
    holds it) and turns SIGTERM into a clean stop; leaving stops every child, then drops the
    record and the lock.
    """

    def __init__(self, folder: Path | None, grace_s: float = 30) -> None:
        self.folder, self.grace_s = folder, grace_s
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.urls: dict[str, str] = {}
        self.started_at = time.time()
        self._lock: IO[str] | None = None

    def __enter__(self) -> Supervisor:
        if self.folder is not None:
            self._lock = _take_lock(self.folder)
        signal.signal(signal.SIGTERM, _raise_stop)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> bool:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second `down` must not cut this short
        try:
            self.stop()
        finally:
            if self.folder is not None and not self.running():
                (self.folder / RECORD_FILE).unlink(missing_ok=True)
            if self._lock is not None:
                self._lock.close()  # releases the flock
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return kind is not None and issubclass(kind, _Stop | KeyboardInterrupt)  # normal stops

    def spawn(self, name: str, command: list[str], *, env: Mapping[str, str] | None = None,
              log: Path | None = None, own_log: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a child; its output goes to ``log`` when given (rotated past 10 MiB, two old
        files kept), else to this terminal
        (``own_log``: a file the child writes its log to itself, shown by ``stack status``)."""
        child = subprocess.Popen(command, env=dict(env) if env is not None else None,
                                 stdout=subprocess.PIPE if log is not None else None,
                                 stderr=subprocess.STDOUT if log is not None else None)
        if log is not None:  # copied by a thread that rotates the file by size
            assert child.stdout is not None
            RotatingCopy(child.stdout, log).start()
        self.children[name] = child
        shown = log or own_log
        if shown is not None:
            self.logs[name] = shown
        self._save()
        return child

    def note_urls(self, urls: Mapping[str, str]) -> None:
        self.urls.update(urls)
        self._save()

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll ``ready`` until true; a child that exits meanwhile, or the timeout, is a
        ``StackError`` naming ``what`` and where its output went."""
        deadline = time.monotonic() + timeout_s
        while not ready():
            gone = [name for name, child in self.children.items() if child.poll() is not None]
            if gone:
                raise StackError(f"{gone[0]} exited while waiting for {what}"
                                 f"{self._see(gone[0])}")
            if time.monotonic() > deadline:
                raise StackError(f"{what} did not happen within {timeout_s:g}s")
            time.sleep(0.2)

    def supervise(self) -> None:
        """Until Ctrl-C or SIGTERM; a child that exits is reported once."""
        reported: set[str] = set()
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                for name, child in self.children.items():
                    if child.poll() is not None and name not in reported:
                        reported.add(name)
                        print(f"warning: {name} exited with {child.returncode}"
                              f"{self._see(name)}", file=sys.stderr, flush=True)
                time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM every child (newest first: the monitoring stack before the orchestrator),
        wait out the grace period, then SIGKILL what is left."""
        children = list(reversed(self.children.values()))
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.1, deadline - time.monotonic()))
            if child.poll() is None:
                child.kill()
                child.wait(5)

    def running(self) -> list[str]:
        return [name for name, child in self.children.items() if child.poll() is None]

    def failed(self) -> list[str]:
        """Children that ended other than by a clean stop."""
        return [name for name, child in self.children.items()
                if child.returncode not in (None, 0, -signal.SIGTERM)]

    def _see(self, name: str) -> str:
        return f"; see {self.logs[name]}" if name in self.logs else "; see its lines above"

    def _save(self) -> None:
        if self.folder is None:
            return
        record = Record(os.getpid(), self.started_at, self.urls,
                        [Entry(name, child.pid, str(self.logs.get(name, "")))
                         for name, child in self.children.items()])
        temporary = self.folder / f".{RECORD_FILE}.tmp"
        temporary.write_text(json.dumps(asdict(record), indent=1))
        temporary.replace(self.folder / RECORD_FILE)


def stop_recorded(folder: Path, timeout_s: float = 45) -> tuple[list[str], list[str]]:
    """``stack down``: stop the supervisor that runs from ``folder`` (it stops its children),
    then anything recorded that still runs. Returns what was stopped and what still runs."""
    record = load_record(folder)
    holder = lock_holder(folder)
    entries = record.processes if record else []
    supervisor = holder if holder and holder > 0 else (record.supervisor if record else None)
    targets = ([Entry("supervisor", supervisor)] if supervisor else []) + entries
    stopped = [f"{e.name} ({e.pid})" for e in targets if alive(e.pid)]
    if supervisor and alive(supervisor):
        os.kill(supervisor, signal.SIGTERM)
        _wait_gone([supervisor], timeout_s)
    leftovers = [e.pid for e in entries if alive(e.pid)]
    for pid in leftovers:  # the supervisor was killed, or it gave up on a child
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    _wait_gone(leftovers, 10)
    for pid in leftovers:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _wait_gone(leftovers, 5)
    still = [f"{e.name} ({e.pid})" for e in targets if alive(e.pid)]
    if not still:
        (folder / RECORD_FILE).unlink(missing_ok=True)
    return stopped, still


def recorded_status(folder: Path) -> tuple[Record | None, list[tuple[Entry, bool]]]:
    """The record (``None`` when no stack ran from ``folder``) and whether each process runs."""
    record = load_record(folder)
    if record is None:
        return None, []
    rows = [(Entry("supervisor", record.supervisor), alive(record.supervisor))]
    return record, rows + [(e, alive(e.pid)) for e in record.processes]


def _take_lock(folder: Path) -> IO[str]:
    folder.mkdir(parents=True, exist_ok=True)
    lock = (folder / LOCK_FILE).open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        record = load_record(folder)
        running = record.describe() if record else f"supervisor pid {lock_holder(folder)}"
        raise AlreadyRunning(
            f"a stack already runs from {folder} ({running}); stop it with `orchestrator stack"
            " down`, or start another with its own ORCH_STATE_DIR and ports") from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def _raise_stop(signum: int, frame: FrameType | None) -> Any:
    raise _Stop


def _wait_gone(pids: list[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
