"""The numpy-only layer: interval, rank and top-k summaries of ability draws.

Everything here works on plain arrays whose first axis holds the posterior draws (chains
and draws flattened together) and whose second axis holds the models that are ranked
against each other. The xarray/pandas layer (:mod:`bayesirt.abilities.table`) only labels
what these functions return.
"""

from __future__ import annotations

import numpy as np

from bayesirt.errors import InputError

__all__ = ["check_options", "draw_ranks", "rank_summary", "response_counts"]


def check_options(interval: float, top_k: int) -> None:
    """Refuse an interval outside (0, 1) or a top-k below 1, naming the value.

    Parameters
    ----------
    interval : float
        Probability mass of the central intervals.
    top_k : int
        Size of the "top k" group of ``p_top_k``.

    Raises
    ------
    InputError
        If either value is out of range or of the wrong type.
    """
    if isinstance(interval, bool) or not isinstance(interval, int | float | np.floating):
        raise InputError(f"interval must be a number in (0, 1), got {interval!r}")
    if not 0.0 < float(interval) < 1.0:
        raise InputError(f"interval must be in (0, 1) (e.g. 0.9), got {interval!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise InputError(f"top_k must be a positive integer, got {top_k!r}")


def draw_ranks(draws: np.ndarray) -> np.ndarray:
    """Rank the models within every draw: 1 = highest ability.

    Ties (rare with continuous draws) go to the model that comes first, so each draw's
    ranks are a permutation of ``1..n_models``: exactly ``k`` models are in the top ``k`` of
    every draw, and ``p_top_k`` sums to ``min(k, n_models)`` over the models.

    Parameters
    ----------
    draws : ndarray, shape (n_draws, n_models, ...)
        Ability draws; trailing axes (e.g. benchmarks) are ranked independently.

    Returns
    -------
    ndarray of int64, shape (n_draws, n_models, ...)
    """
    order = np.argsort(-draws, axis=1, kind="stable")
    ranks = np.empty(draws.shape, dtype=np.int64)
    positions = np.arange(1, draws.shape[1] + 1, dtype=np.int64)
    positions = positions.reshape((1, -1) + (1,) * (draws.ndim - 2))
    np.put_along_axis(ranks, order, np.broadcast_to(positions, draws.shape), axis=1)
    return ranks


def rank_summary(draws: np.ndarray, *, interval: float = 0.9, top_k: int = 10) -> dict:
    """Posterior summaries of each model's ability and of its rank.

    Parameters
    ----------
    draws : ndarray, shape (n_draws, n_models, ...)
        Ability draws (any float dtype; summarised in float64). Trailing axes are
        independent rankings (one per benchmark).
    interval : float, default 0.9
        Mass of the central intervals (of the ability and of the rank).
    top_k : int, default 10
        ``p_top_k`` is the fraction of draws in which the model ranks ``<= top_k``.

    Returns
    -------
    dict of str to ndarray, each shape (n_models, ...)
        ``mean``, ``sd`` (ddof 1; 0 for a single draw), ``lower``, ``upper`` (float64);
        ``rank`` (ordinal rank of the posterior mean, 1 = best, a permutation),
        ``rank_lower``, ``rank_upper`` (int64: central interval of the per-draw rank; each
        bound is a rank some draws take) and ``p_top_k`` (float64 in [0, 1]).

    Raises
    ------
    InputError
        If there are no draws or no models, a draw is not finite, or an option is out of
        range.
    """
    check_options(interval, top_k)
    x = np.asarray(draws, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise InputError(f"need at least one draw of at least one model, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        # A NaN would silently sort last (or first) in every draw: refuse instead.
        raise InputError(f"{int(np.sum(~np.isfinite(x)))} ability draw(s) are not finite")
    alpha = (1.0 - float(interval)) / 2.0
    lower, upper = np.quantile(x, [alpha, 1.0 - alpha], axis=0)
    ranks = draw_ranks(x)
    # inverted_cdf returns ranks that draws actually take (integers), not interpolations.
    rank_lower, rank_upper = np.quantile(ranks, [alpha, 1.0 - alpha], axis=0,
                                         method="inverted_cdf")
    mean = x.mean(axis=0)
    return {
        "mean": mean,
        "sd": x.std(axis=0, ddof=1) if x.shape[0] > 1 else np.zeros_like(mean),
        "lower": lower,
        "upper": upper,
        "rank": draw_ranks(mean[None])[0],
        "rank_lower": np.asarray(rank_lower).astype(np.int64),
        "rank_upper": np.asarray(rank_upper).astype(np.int64),
        "p_top_k": np.mean(ranks <= top_k, axis=0),
    }


def response_counts(model_idx: np.ndarray, item_idx: np.ndarray, item_benchmark: np.ndarray,
                    n_models: int, n_benchmarks: int) -> np.ndarray:
    """Count the responses each (model, benchmark) cell rests on.

    Parameters
    ----------
    model_idx, item_idx : ndarray of int, shape (n_obs,)
        Model and item of each training response.
    item_benchmark : ndarray of int, shape (n_items,)
        Benchmark of each item.
    n_models, n_benchmarks : int
        Sizes of the posterior's ``model`` and ``benchmark`` dims.

    Returns
    -------
    ndarray of int64, shape (n_models, n_benchmarks)
        Summing over axis 1 gives the responses per model.

    Raises
    ------
    InputError
        If an index is out of range of the dims it refers to.
    """
    model_idx = np.asarray(model_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    item_benchmark = np.asarray(item_benchmark, dtype=np.int64)
    for name, idx, size in (("model_idx", model_idx, n_models),
                            ("item_idx", item_idx, item_benchmark.size),
                            ("item_benchmark", item_benchmark, n_benchmarks)):
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise InputError(f"constant_data/{name} has indices outside [0, {size})")
    if model_idx.shape != item_idx.shape:
        raise InputError(f"constant_data/model_idx {model_idx.shape} and item_idx "
                         f"{item_idx.shape} differ in length")
    cell = model_idx * n_benchmarks + item_benchmark[item_idx]
    counts = np.bincount(cell, minlength=n_models * n_benchmarks)
    return counts.astype(np.int64).reshape(n_models, n_benchmarks)
