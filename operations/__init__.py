"""The operations layer: what an on-call engineer runs. ``doctor`` gathers the facts the
troubleshooting trees ask for and walks them.

May import ``stack``, ``alerts``, ``service`` and ``catalog``; only the composition root
(``orchestrator``) imports it.
"""
