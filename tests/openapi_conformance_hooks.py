"""Schemathesis hooks of tests/test_openapi_conformance.py (``SCHEMATHESIS_HOOKS``): the run
never revokes or rotates the key it authenticates with, and it knows the document's own string
formats (``cron``, ``time-zone``: ``service.api.openapi.STRING_FORMATS``).

Schemathesis learns values from the answers it gets (the key list names every live key) and
feeds them to the other operations, so it finds the run's own key name and, revoking or rotating
it, would turn every later request into a 401. Only that one name is changed, just before the
request is sent; every other key, the ones the run creates included, is fair game.

A task's stream is asked for with ``live=false``: a live stream stays open until its task ends,
and the run's tasks of agents no worker serves never do (the live stream has its own tests in
tests/test_streaming.py)."""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

from service.cron import zone

_FIELDS = {  # each crontab field: values, and the largest step worth writing
    "minute": (range(60), 30), "hour": (range(24), 12), "day": (range(1, 29), 14),
    "month": (range(1, 13), 6), "weekday": (range(8), 3),
}


@st.composite
def _cron_field(draw: Any, values: range, largest_step: int) -> str:
    low = draw(st.sampled_from(values))
    high = draw(st.sampled_from(values).filter(lambda v: v >= low))
    step = draw(st.integers(1, largest_step))
    return draw(st.sampled_from(["*", f"*/{step}", str(low), f"{low}-{high}",
                                 f"{low}-{high}/{step}", f"{low},{high}"]))


schemathesis.openapi.format("cron", st.tuples(
    *(_cron_field(values, step) for values, step in _FIELDS.values())).map(" ".join))
schemathesis.openapi.format("time-zone", st.sampled_from(
    ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]).filter(
    lambda name: zone(name) is not None))

PROTECTED_KEY_ENV = "ORCH_CONFORMANCE_KEY_NAME"
"""The variable that names the run's own key."""


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    protected = os.environ.get(PROTECTED_KEY_ENV)
    parameters = case.path_parameters or {}
    if protected and parameters.get("name") == protected:
        parameters["name"] = f"{protected}-someone-else"
    query = case.query or {}
    if case.path.endswith("/stream") and query.get("live", True) in (True, "true"):
        case.query = {**query, "live": "false"}  # (a bad value is left for the 400)
