"""Schemathesis hooks of tests/test_openapi_conformance.py (``SCHEMATHESIS_HOOKS``): the run
never revokes or rotates the key it authenticates with.

Schemathesis learns values from the answers it gets (the key list names every live key) and
feeds them to the other operations, so it finds the run's own key name and, revoking or rotating
it, would turn every later request into a 401. Only that one name is changed, just before the
request is sent; every other key, the ones the run creates included, is fair game."""

from __future__ import annotations

import os
from typing import Any

import schemathesis

PROTECTED_KEY_ENV = "ORCH_CONFORMANCE_KEY_NAME"
"""The variable that names the run's own key."""


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    protected = os.environ.get(PROTECTED_KEY_ENV)
    parameters = case.path_parameters or {}
    if protected and parameters.get("name") == protected:
        parameters["name"] = f"{protected}-someone-else"
