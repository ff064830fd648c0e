"""Load generation, SLO verdicts and benchmarks (plots need matplotlib: the ``loadtest`` extra).

May import: ``alerts`` (the SLO objects), ``catalog`` and ``service``.
"""
