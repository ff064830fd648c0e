"""Process: memory with its growth projection, CPU, file descriptors, what version runs."""

from __future__ import annotations

import re

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from catalog import metrics as m
from catalog import panels as ap
from dashboards import levels as lv
from dashboards import variables
from dashboards.common import BYTES, COUNT, NONE, RATIO, Query, table_panel, timeseries_panel
from dashboards.layout import Board
from dashboards.promql import JOBS, agg, rate, ratio, sel, var

INSTANCE = var("instance")


def projection() -> tuple[str, str]:
    """The ``predict_linear`` look-back window and horizon of the memory-growth alert, so the
    panel projects exactly as far as the alert does."""
    found = re.search(r"predict_linear\(.*\[(\w+)\],\s*([^)]+)\)",
                      lv.threshold("ProcessMemoryGrowing").expr)
    if not found:
        raise ValueError("ProcessMemoryGrowing no longer uses predict_linear")
    return found.group(1), found.group(2).strip()


def hours(horizon: str) -> str:
    """``4 * 3600`` -> ``4h`` (a product of integers, in seconds)."""
    seconds = 1
    for factor in horizon.split("*"):
        seconds *= int(factor)
    return f"{seconds / 3600:g}h"


def _memory_and_cpu(board: Board) -> None:
    board.row("Memory and CPU")
    window, horizon = projection()
    memory = sel(m.PROCESS_RESIDENT_MEMORY, JOBS, INSTANCE)
    board.add(timeseries_panel(
        ap.MEMORY,
        [Query(memory, "{{instance}}"),
         Query(f"predict_linear({memory}[{window}], {horizon})",
               f"{{{{instance}}}} in {hours(horizon)}")],
        unit=BYTES, min_value=0,
        description=f"Resident memory per process, and where its growth over the last"
                    f" {window} takes it in {hours(horizon)}: a steady climb is a leak."
                    f" The lines are the memory alerts (current use, and the projection)."),
        16, 9)
    board.add(timeseries_panel(
        "CPU",
        [Query(rate(m.PROCESS_CPU, JOBS, INSTANCE), "{{instance}}")],
        unit=RATIO, min_value=0,
        description="CPU time used per second of wall time (100% = one core busy)."), 8, 9)


def _files(board: Board) -> None:
    board.row("File descriptors")
    board.add(timeseries_panel(
        ap.FDS,
        [Query(ratio(sel(m.PROCESS_OPEN_FDS, JOBS, INSTANCE),
                     sel(m.PROCESS_MAX_FDS, JOBS, INSTANCE)), "{{instance}}")],
        unit=RATIO, min_value=0, max_value=1,
        description="Open file descriptors as a share of the limit: leaking sockets or"
                    " files end in EMFILE errors."), 12, 8)
    board.add(timeseries_panel(
        "Open and maximum file descriptors",
        [Query(sel(m.PROCESS_OPEN_FDS, JOBS, INSTANCE), "{{instance}} open"),
         Query(sel(m.PROCESS_MAX_FDS, JOBS, INSTANCE), "{{instance}} max")],
        unit=COUNT, min_value=0,
        description="Open file descriptors next to the process limit."), 12, 8)


def _disks(board: Board) -> None:
    board.row("Disk space")
    board.add(timeseries_panel(
        ap.DISK_FREE,
        [Query(ratio(agg("min", m.DISK_FREE, INSTANCE, by=("instance", "volume")),
                     agg("max", m.DISK_SIZE, INSTANCE, by=("instance", "volume"))),
               "{{instance}} {{volume}}")],
        unit=RATIO, min_value=0, max_value=1,
        description="Free space left on each volume the orchestrator writes to (its state"
                    " folder; PostgreSQL's data folder when the server runs on the same host)."
                    " A full database volume stops every write; a full state volume stops the"
                    " logs and the metrics files."), 12, 8)
    board.add(timeseries_panel(
        "Free and total disk space",
        [Query(agg("min", m.DISK_FREE, INSTANCE, by=("instance", "volume")),
               "{{instance}} {{volume}} free"),
         Query(agg("max", m.DISK_SIZE, INSTANCE, by=("instance", "volume")),
               "{{instance}} {{volume}} size")],
        unit=BYTES, min_value=0,
        description="Bytes free next to the volume's size."), 12, 8)


def _build(board: Board) -> None:
    board.row("Build")
    board.add(table_panel(
        "Running versions",
        [Query(agg("max", m.BUILD_INFO, JOBS, INSTANCE,
                   by=("job", "instance", "component", "version", "python")),
               instant=True, fmt=PromQueryFormat.TABLE)],
        unit=NONE,
        description="Version, Python and component of every scraped process."), 24, 6)


def dashboard() -> db.Dashboard:
    board = Board(ap.PROCESS, "process", "Memory, CPU, file descriptors and versions of the"
                  " API and agent processes.", variables=[variables.instance()])
    _memory_and_cpu(board)
    _files(board)
    _disks(board)
    _build(board)
    return board.dashboard()
