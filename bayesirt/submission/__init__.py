"""The competition submission: build the ZIP, evaluate it locally, make splits.

- :func:`build_bundle` writes the ZIP (model.py, labeling.py, the numpy-only runtime copied
  verbatim from the package, the flat posterior artifact, a manifest).
- :func:`evaluate` plays the platform against a ZIP in a subprocess (confined by bubblewrap
  where it works: :mod:`bayesirt.submission.sandbox`) and scores it beside three empirical
  baselines.
- :func:`split_dataset` holds out new items per benchmark from any long-form responses.
- :func:`safe_extract` unpacks a ZIP refusing absolute paths, ``..``, links and bombs.
"""

from bayesirt.submission.builder import ACQUISITIONS, DEFAULT_MAX_DRAWS, BundleInfo, build_bundle
from bayesirt.submission.harness import SubmissionError, SubmissionWarning, evaluate
from bayesirt.submission.report import EvaluationReport, RunResult
from bayesirt.submission.safe_zip import UnsafeArchiveError, safe_extract
from bayesirt.submission.sandbox import SandboxUnavailableError
from bayesirt.submission.split import split_dataset

__all__ = [
    "ACQUISITIONS",
    "DEFAULT_MAX_DRAWS",
    "BundleInfo",
    "EvaluationReport",
    "RunResult",
    "SandboxUnavailableError",
    "SubmissionError",
    "SubmissionWarning",
    "UnsafeArchiveError",
    "build_bundle",
    "evaluate",
    "safe_extract",
    "split_dataset",
]
