"""The operations layer: what an on-call engineer runs. ``doctor`` gathers the facts the
troubleshooting trees ask for and walks them; ``drills`` inject each incident's real fault on a
stack of their own and check the page, the doctor's verdict and the resolve.

May import ``stack``, ``alerts``, ``service``, ``agents`` (the drills' misbehaving agents) and
``catalog``; only the composition root (``orchestrator``) imports it.
"""
