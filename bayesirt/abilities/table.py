"""Ability tables of a saved posterior: one labelled row per model (or model x benchmark).

Reads the contract every registered model writes (``bayesirt.models.contract_posterior``):
``theta`` (chain, draw, model), the general ability, and ``ability`` (chain, draw, model,
benchmark), plus the response indices in ``constant_data``. Nothing here knows a model by
name, so a newly registered model is covered as long as it writes the contract.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesirt.abilities.stats import check_options, rank_summary, response_counts
from bayesirt.errors import InputError

__all__ = ["COLUMNS", "DTYPES", "ability_table", "general_draws", "p_top_column"]

#: Fixed columns of an ability table, in order (``benchmark`` only with ``by_benchmark``;
#: the ``p_top{k}`` column comes last).
COLUMNS = ("model", "benchmark", "mean", "sd", "lower", "upper", "n_responses", "observed",
           "rank", "rank_lower", "rank_upper")

#: Column dtypes: what :func:`ability_table` builds and ``read_csv`` restores.
DTYPES: dict[str, Any] = {
    "model": str, "benchmark": str, "mean": "float64", "sd": "float64", "lower": "float64",
    "upper": "float64", "n_responses": "int64", "observed": "bool", "rank": "int64",
    "rank_lower": "int64", "rank_upper": "int64",
}

_LEAD = ("chain", "draw")


def p_top_column(top_k: int) -> str:
    """Name of the top-k probability column, e.g. ``p_top10``."""
    return f"p_top{int(top_k)}"


def _variable(tree: xr.DataTree, name: str, dims: tuple[str, ...]) -> xr.DataArray:
    """Return a posterior variable with exactly the contract's dims, else refuse in one line."""
    post = tree["posterior"] if "posterior" in tree.children else None
    if post is None or name not in post.data_vars:
        model = tree.attrs.get("model_name", "?")
        raise InputError(f"the posterior (model {model!r}) has no {name!r} variable; ability "
                         "tables need the variables every registered bayesirt model writes")
    var = post[name]
    if tuple(var.dims) != _LEAD + dims:
        raise InputError(f"posterior/{name} has dims {tuple(var.dims)}, expected "
                         f"{_LEAD + dims}")
    return var


def _names(var: xr.DataArray, dim: str) -> list[str]:
    """Ids of one dim (its coordinate), or positions where a file has none."""
    if dim in var.coords:
        return [str(v) for v in var.coords[dim].values]
    return [str(i) for i in range(var.sizes[dim])]


def _flat(var: xr.DataArray) -> np.ndarray:
    """(chain, draw, ...) -> (chain * draw, ...): every draw counts once, chains pooled."""
    values = np.asarray(var.values)
    return values.reshape((-1, *values.shape[2:]))


def general_draws(tree: xr.DataTree) -> tuple[list[str], np.ndarray]:
    """Return the general ability's draws with the model names.

    Parameters
    ----------
    tree : xarray.DataTree
        A posterior from :func:`bayesirt.posteriors.load`.

    Returns
    -------
    names : list of str, length n_models
    draws : ndarray, shape (n_chains * n_draws, n_models)

    Raises
    ------
    InputError
        If ``posterior/theta`` is missing or has other dims.
    """
    theta = _variable(tree, "theta", ("model",))
    return _names(theta, "model"), _flat(theta)


def _counts(tree: xr.DataTree, n_models: int, n_benchmarks: int) -> np.ndarray:
    """Responses per (model, benchmark), shape (n_models, n_benchmarks), from the file."""
    if "constant_data" not in tree.children:
        raise InputError("the posterior has no constant_data group: the responses each "
                         "ability rests on cannot be counted")
    const = tree["constant_data"]
    missing = [n for n in ("model_idx", "item_idx", "item_benchmark") if n not in const]
    if missing:
        raise InputError(f"constant_data lacks {missing}: the responses each ability rests "
                         "on cannot be counted")
    return response_counts(const["model_idx"].values, const["item_idx"].values,
                           const["item_benchmark"].values, n_models, n_benchmarks)


def _frame(columns: dict[str, np.ndarray], top_k: int, stats: dict[str, np.ndarray],
           benchmark_position: np.ndarray | None = None) -> pd.DataFrame:
    """Assemble the columns in :data:`COLUMNS` order with :data:`DTYPES`, sorted by rank.

    ``benchmark_position`` (one per row) sorts by benchmark first, in the posterior's
    order: a position key, so the order never depends on how the names compare.
    """
    for key in ("mean", "sd", "lower", "upper", "rank", "rank_lower", "rank_upper"):
        columns[key] = stats[key].ravel()
    # observed follows n_responses by definition: no responses = predicted, never fitted.
    columns["observed"] = columns["n_responses"] > 0
    ordered = {c: pd.Series(columns[c], dtype=DTYPES[c]) for c in COLUMNS if c in columns}
    ordered[p_top_column(top_k)] = pd.Series(stats["p_top_k"].ravel(), dtype="float64")
    frame = pd.DataFrame(ordered)
    keys = np.lexsort((frame["rank"].to_numpy(),) if benchmark_position is None
                      else (frame["rank"].to_numpy(), benchmark_position))
    return frame.iloc[keys].reset_index(drop=True)


def ability_table(
    tree: xr.DataTree,
    *,
    by_benchmark: bool = False,
    top_k: int = 10,
    interval: float = 0.9,
) -> pd.DataFrame:
    """Ability of every model, with intervals, ranks and top-k probabilities.

    Parameters
    ----------
    tree : xarray.DataTree
        A posterior from :func:`bayesirt.posteriors.load` (any registered model).
    by_benchmark : bool, default False
        One row per (model, benchmark) from ``ability``, ranked within each benchmark,
        instead of one row per model from the general ability ``theta``.
    top_k : int, default 10
        ``p_top{top_k}`` is the fraction of draws in which the model ranks in the top
        ``top_k`` (of its benchmark, with ``by_benchmark``).
    interval : float, default 0.9
        Mass of the central intervals ``lower``/``upper`` and ``rank_lower``/``rank_upper``.

    Returns
    -------
    pandas.DataFrame
        Rows: n_models, or n_models x n_benchmarks. Columns: ``model`` (str),
        ``benchmark`` (str, only ``by_benchmark``), ``mean``, ``sd``, ``lower``, ``upper``
        (float64, posterior of the ability), ``n_responses`` (int64, responses it rests
        on), ``observed`` (bool, ``n_responses > 0``; False: the ability is predicted
        through the general ability, not measured), ``rank`` (int64, rank of the posterior
        mean, 1 = best), ``rank_lower``, ``rank_upper`` (int64, central interval of the
        per-draw rank) and ``p_top{top_k}`` (float64). Sorted by rank (within benchmark,
        benchmarks in the posterior's order). Every model is ranked, the predicted ones
        too, so each benchmark's ranks are a permutation of 1..n_models.

    Raises
    ------
    InputError
        If the posterior lacks ``theta``/``ability`` or the response indices, a draw is not
        finite, or ``top_k``/``interval`` is out of range.
    """
    check_options(interval, top_k)
    if not by_benchmark:
        names, draws = general_draws(tree)
        counts = _counts(tree, len(names), _benchmark_count(tree))
        stats = rank_summary(draws, interval=interval, top_k=top_k)
        columns = {"model": np.asarray(names, dtype=object), "n_responses": counts.sum(axis=1)}
        return _frame(columns, top_k, stats)
    ability = _variable(tree, "ability", ("model", "benchmark"))
    models, benches = _names(ability, "model"), _names(ability, "benchmark")
    counts = _counts(tree, len(models), len(benches))
    stats = rank_summary(_flat(ability), interval=interval, top_k=top_k)
    n_models, n_benchmarks = counts.shape
    columns = {
        # Row-major (model, benchmark) cells, the layout of every stats array.
        "model": np.repeat(np.asarray(models, dtype=object), n_benchmarks),
        "benchmark": np.tile(np.asarray(benches, dtype=object), n_models),
        "n_responses": counts.ravel(),
    }
    return _frame(columns, top_k, stats, np.tile(np.arange(n_benchmarks), n_models))


def _benchmark_count(tree: xr.DataTree) -> int:
    """Size of the benchmark dim: the range ``item_benchmark`` indexes into."""
    post = tree["posterior"]
    if "benchmark" in post.sizes:
        return int(post.sizes["benchmark"])
    const = tree["constant_data"] if "constant_data" in tree.children else None
    if const is not None and "item_benchmark" in const and const["item_benchmark"].size:
        return int(const["item_benchmark"].values.max()) + 1
    return 1
