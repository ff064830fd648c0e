"""The vocabulary every layer reads, defined once: exchange, queue and Redis-key names
(``names``), the metric catalog (``metrics``), scrape-job names (``jobs``), and the dashboards'
uids and the panels alerts link to (``panels``).

May import: no other layer (it is the ground floor).
"""
