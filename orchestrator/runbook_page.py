"""``/runbook``: the runbook as a web page, so every alert's ``runbook_url`` opens its section;
its links and commands point at this deployment (the API's settings), not at the local
defaults."""

from __future__ import annotations

from functools import cache
from typing import Any

import markdown
from litestar import MediaType, Request, get

from alerts.links import Deployment
from alerts.render import HEADER
from alerts.runbook import runbook_markdown


@cache
def runbook_html(deployment: Deployment) -> str:
    body = markdown.markdown(runbook_markdown(HEADER, deployment),
                             extensions=["tables", "fenced_code", "toc"])
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Orchestrator runbook"
            "</title><style>body{font-family:sans-serif;max-width:60rem;margin:auto}"
            "pre{background:#f4f4f4;padding:.5rem}td,th{border:1px solid #ccc;padding:.2rem}"
            "</style></head><body>" + body + "</body></html>")


@get("/runbook", media_type=MediaType.HTML, include_in_schema=False)
async def runbook_page(request: Request[Any, Any, Any]) -> str:
    return runbook_html(Deployment.from_settings(request.app.state.services.settings))
