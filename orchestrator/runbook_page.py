"""``/runbook``: the runbook as a web page, so every alert's ``runbook_url`` opens its section;
its links and commands point at this deployment (the API's settings), not at the local
defaults."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, get

from alerts.links import Deployment
from alerts.render import HEADER
from alerts.runbook import runbook_html
from operations.drills.drills import drills_by_alert


@get("/runbook", media_type=MediaType.HTML, include_in_schema=False)
async def runbook_page(request: Request[Any, Any, Any]) -> str:
    return runbook_html(HEADER, Deployment.from_settings(request.app.state.services.settings),
                        tuple(drills_by_alert().items()))
