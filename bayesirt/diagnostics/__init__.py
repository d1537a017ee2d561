"""Diagnostics of a saved posterior: convergence, predictive checks, LOO, held-out metrics.

``run_diagnose`` writes the self-contained HTML report (and a JSON of headline numbers) that
``bayesirt diagnose`` exposes; ``convergence_summary`` gives the same headline convergence
numbers cheaply, for ``bayesirt fit`` to print right after sampling.

Layout: ``summary`` (verdict and headline numbers), ``compute`` (everything the report shows,
as data), ``advice`` (what to do next), ``plots`` (figures), ``render`` (HTML) and ``report``
(orchestration), over ``convergence``, ``checks`` and ``heldout``.
"""

from bayesirt.diagnostics.report import DiagnosticSummary, convergence_summary, run_diagnose

__all__ = ["DiagnosticSummary", "convergence_summary", "run_diagnose"]
