"""``orchestrator doctor``: facts (``facts``), the nine troubleshooting trees as data
(``trees``), the engine that walks them (``engine``) and the report (``report``)."""
