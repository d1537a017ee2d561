"""The diagnostic report: one self-contained HTML file plus a JSON of headline numbers.

:func:`run_diagnose` runs three separate steps: ``compute.compute`` (numbers and tables,
``ReportData``), ``plots.report_figures`` (PNG figures) and ``render.render_html`` (the page).
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bayesirt.diagnostics.compute import compute
from bayesirt.diagnostics.plots import report_figures
from bayesirt.diagnostics.render import render_html
from bayesirt.diagnostics.summary import DiagnosticSummary, convergence_summary

__all__ = ["DiagnosticSummary", "convergence_summary", "run_diagnose"]

_STEPS = ("load", "convergence", "parameters", "ppc", "loo", "heldout", "plots", "write")


def timed(timings: dict[str, float], bar: Any | None = None) -> Callable[[str], None]:
    """Make a ``tick`` callback recording the seconds since the previous tick under each name."""
    last = [time.perf_counter()]

    def tick(name: str) -> None:
        now = time.perf_counter()
        timings[name] = round(now - last[0], 2)
        last[0] = now
        if bar is not None:
            bar.set_postfix_str(name)
            bar.update(1)

    return tick


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def run_diagnose(
    posterior_path: str | os.PathLike,
    out_html: str | os.PathLike,
    *,
    json_path: str | os.PathLike | None = None,
    test_dir: str | os.PathLike | None = None,
    strict: bool = False,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    bfmi_min: float = 0.3,
    allow_divergences: int = 0,
    max_plot_params: int = 8,
    ppc_draws: int = 200,
    loo_full_max: int = 50_000,
    loo_subsample: int = 2_000,
    seed: int = 0,
    progress: bool = True,
) -> DiagnosticSummary:
    """Diagnose a saved posterior: write the HTML report (and JSON), return the summary.

    Parameters
    ----------
    posterior_path : path-like
        A file written by ``bayesirt.posteriors.save``.
    out_html : path-like
        The report (one self-contained HTML file: images inline, no network requests).
    json_path : path-like, optional
        Also write the headline numbers as JSON.
    test_dir : path-like, optional
        Data-set root (or its test/ folder) with ``reference/ground_truth.csv``: adds
        held-out log-loss, AUC, Brier and a reliability diagram with ECE.
    strict : bool, default False
        Recorded in the report; the caller (CLI) exits non-zero when ``not passed``.
    rhat_max, ess_min, bfmi_min, allow_divergences : float
        Thresholds of the verdict.
    max_plot_params : int, default 8
        Worst parameters shown as trace and rank plots.
    ppc_draws : int, default 200
        Posterior draws replicated for the predictive checks.
    loo_full_max, loo_subsample : int
        Exact PSIS-LOO up to this many observations; above, a subsample of this size.
    seed : int, default 0
        Seeds the replicated responses and the LOO subsample (numpy Generator).
    progress : bool, default True
        Show a tqdm progress bar on stderr.

    Returns
    -------
    DiagnosticSummary
        Headline numbers, ``passed``, ``failures`` and ``next_steps``.

    Raises
    ------
    FileNotFoundError
        If the posterior (or the test data) does not exist.
    ValueError
        If the file is not a readable bayesirt posterior.
    """
    if not Path(posterior_path).is_file():  # before the progress bar: one clean error line
        raise FileNotFoundError(errno.ENOENT, "no such posterior file", str(posterior_path))
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    bar = tqdm(total=len(_STEPS), desc="diagnose", disable=not progress, leave=False)
    tick = timed(timings, bar)
    try:
        data = compute(posterior_path, test_dir=test_dir, strict=strict, rhat_max=rhat_max,
                       ess_min=ess_min, bfmi_min=bfmi_min, allow_divergences=allow_divergences,
                       max_plot_params=max_plot_params, ppc_draws=ppc_draws,
                       loo_full_max=loo_full_max, loo_subsample=loo_subsample, seed=seed,
                       tick=tick)
        figs = report_figures(data)
        tick("plots")
        s = data.summary
        s.timings = timings
        timings["total"] = round(time.perf_counter() - t_start, 2)
        _atomic_write(Path(out_html), render_html(data, figs))
        if json_path is not None:
            _atomic_write(Path(json_path), json.dumps(s.to_dict(), indent=2, sort_keys=True))
        tick("write")
    finally:
        bar.close()
    return s
