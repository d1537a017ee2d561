"""Workflows over saved posteriors: batch grids, their comparison, ability tables, held-out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# --- batch fitting and comparison (bayesirt.batch) ------------------------------------------


def batch(
    plan_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    retries: int = 0,
    progress: bool = True,
    echo: Any = print,
) -> Any:
    """Run every fit of a TOML plan on Dask, skipping those ``out`` already holds.

    Parameters
    ----------
    plan_path : path-like
        The plan (see :mod:`bayesirt.batch.plan`); validated completely, data sets
        included, before any fit starts.
    out : path-like
        Output folder: ``<out>/<fit name>/posterior.nc`` + ``summary.json`` (or
        ``failed.json``) per fit.
    workers : int, optional
        Processes of the local Dask cluster (default: one per core).
    scheduler : str, optional
        Address of an existing Dask scheduler to run on instead.
    retries : int, default 0
        Local cluster: how often a fit whose worker died is tried again before it is
        recorded as failed.
    progress : bool, default True
        Progress bar over the fits.
    echo : callable, default print

    Returns
    -------
    bayesirt.batch.BatchReport

    Raises
    ------
    InputError
        A bad plan (one line naming the line and key), output folder or option.
    """
    from bayesirt.batch import load_plan, run_batch

    plan = load_plan(plan_path)
    return run_batch(plan, out, workers=workers, scheduler=scheduler, retries=retries,
                     progress=progress, echo=echo)


def compare(
    batch_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    json_out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Compare a batch's fits (PSIS-LOO, held-out metrics, verdicts, seed spread).

    Parameters
    ----------
    batch_dir : path-like
        A folder written by :func:`batch`.
    out : path-like, optional
        Self-contained HTML page to write.
    json_out : path-like, optional
        The same numbers as JSON.

    Returns
    -------
    dict
        :func:`bayesirt.batch.compare.compare_batch`'s result.

    Raises
    ------
    InputError
        If ``batch_dir`` holds no batch fits, or an output path is unusable.
    """
    from bayesirt.batch.compare import collect, compare_batch
    from bayesirt.batch.files import write_json
    from bayesirt.batch.page import write_page
    from bayesirt.outputs import prepare_output

    collect(batch_dir)  # a wrong folder is refused before any output path is created
    for path, what in ((out, "comparison page"), (json_out, "comparison JSON")):
        if path is not None:
            prepare_output(path, what=what)
    result = compare_batch(batch_dir)
    if out is not None:
        write_page(result, out)
    if json_out is not None:
        write_json(json_out, result)
    return result


# --- ability scores of a saved posterior (bayesirt.abilities) -------------------------------


def abilities(
    posterior_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    by_benchmark: bool = False,
    fmt: str = "table",
    top_k: int = 10,
    interval: float = 0.9,
    json_out: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    echo: Any = print,
) -> Path:
    """Write a posterior's ability table (or the track-2 scores), checking every output first.

    Parameters
    ----------
    posterior_path : path-like
        Posterior NetCDF written by ``bayesirt fit`` (any registered model).
    out : path-like
        CSV to write: the ability table (``fmt="table"``: mean, sd, interval, n_responses,
        observed, rank and its interval, ``p_top{top_k}``) or the competition's
        ``model_id,ability_score`` (``fmt="track2"``).
    by_benchmark : bool, default False
        One row per (model, benchmark), ranked within each benchmark.
    fmt : {"table", "track2"}
    top_k : int, default 10
    interval : float, default 0.9
        Mass of the central intervals.
    json_out : path-like, optional
        Also write the rows as JSON records with the posterior's provenance.
    plot : path-like, optional
        Also write the ranked forest of the general ability (PNG).
    echo : callable or None, default print
        Receives the summary (top 5 models with intervals).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    InputError
        A file that is not a bayesirt posterior, a bad option or an unusable output path
        (checked before the posterior is read).
    """
    from bayesirt.abilities import run_abilities
    from bayesirt.outputs import prepare_output

    for path, what in ((out, "abilities CSV"), (json_out, "abilities JSON"),
                       (plot, "abilities plot")):
        if path is not None:
            prepare_output(path, what=what)
    return run_abilities(posterior_path, out, by_benchmark=by_benchmark, fmt=fmt, top_k=top_k,
                         interval=interval, json_out=json_out, plot=plot, echo=echo)


def heldout(
    rng_key: Any,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    **options: Any,
) -> dict[str, Any]:
    """Leave-one-benchmark-out on a data folder, as the streaming platform scores it.

    See :func:`bayesirt.submission.heldout_run.run_heldout` (options: ``benchmarks``,
    ``scopes``, ``seeds``, ``min_items``, ``max_draws``, ``echo`` and FitConfig fields).

    Returns
    -------
    dict
        ``records``, ``fits``, ``table`` and the written ``records_path``, ``table_path``,
        ``plot_path``.
    """
    from bayesirt.submission.heldout_run import run_heldout

    return run_heldout(rng_key, data_path, out_dir, **options)
