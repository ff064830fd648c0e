"""``/runbook``: the runbook as a web page, so every alert's ``runbook_url`` opens its section."""

from __future__ import annotations

from functools import cache

import markdown
from litestar import MediaType, get

from alerts.render import HEADER
from alerts.runbook import runbook_markdown


@cache
def runbook_html() -> str:
    body = markdown.markdown(runbook_markdown(HEADER), extensions=["tables", "fenced_code", "toc"])
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Orchestrator runbook"
            "</title><style>body{font-family:sans-serif;max-width:60rem;margin:auto}"
            "pre{background:#f4f4f4;padding:.5rem}td,th{border:1px solid #ccc;padding:.2rem}"
            "</style></head><body>" + body + "</body></html>")


@get("/runbook", media_type=MediaType.HTML, include_in_schema=False)
async def runbook_page() -> str:
    return runbook_html()
