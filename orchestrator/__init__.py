"""The composition root: the ``orchestrator`` command assembled from the layers below it.

It alone may import every layer (``service``, ``agents``, ``alerts``, ``dashboards``, ``stack``,
``loadtest``); nothing imports it. The modules here parse commands and wire processes; what a
command does lives in the layer it belongs to.
"""
