"""Batch posterior fitting: a grid of fits from one TOML plan, run on Dask, compared on a page.

``plan`` (with ``checks``) parses and validates a plan and names its fits; ``runner`` runs
them on a local Dask cluster (``cluster``) or an existing one, resumable and
fault-isolated, each fit as ``worker`` does it, into the files of ``files``; ``compare``
computes the PSIS-LOO comparison, held-out metrics, verdicts and seed-to-seed spread of a
batch's outputs; ``page`` renders them as one self-contained HTML page.
"""

from bayesirt.batch.plan import FitSpec, Plan, load_plan, parse_plan
from bayesirt.batch.runner import BatchReport, run_batch

__all__ = ["BatchReport", "FitSpec", "Plan", "load_plan", "parse_plan", "run_batch"]
