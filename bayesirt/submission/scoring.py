"""Metrics and baselines for local evaluation, computed the way the competition scores.

All numpy: log-loss with the organisers' clipping, rank-based ROC-AUC with tied scores
sharing their average rank, Brier score, and a 10-bin expected calibration error. The
baselines are the empirical rates a user could compute without any model, from the
training responses plus whatever labels were revealed.
"""

from __future__ import annotations

import math

import numpy as np

#: The organisers' clipping of probabilities inside log-loss.
LOGLOSS_EPS = 1e-7
#: Pseudo-count with which the empirical baselines shrink towards their parent rate, so
#: that an empty or all-correct cell does not predict exactly 0 or 1.
BASELINE_PRIOR_COUNT = 2.0

METRICS = ("log_loss", "auc", "brier", "ece")


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError(f"labels and probabilities must be 1-d of equal length, got {y.shape} "
                         f"and {p.shape}")
    if y.size and not np.isin(y, (0, 1)).all():
        bad = y[~np.isin(y, (0, 1))][0]
        raise ValueError(f"labels must be 0/1, got {bad!r}")
    if not np.isfinite(p).all():
        raise ValueError(f"probabilities must be finite, got {p[~np.isfinite(p)][0]!r}")
    return y.astype(np.float64), p


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood with p clipped to ``[1e-7, 1 - 1e-7]``.

    Parameters
    ----------
    y : ndarray of int, shape (n,)
        0/1 labels.
    p : ndarray of float, shape (n,)
        Predicted P(y = 1).

    Returns
    -------
    float
        The log-loss; NaN when ``n == 0``.

    Raises
    ------
    ValueError
        If shapes differ, labels are not 0/1, or a probability is not finite.
    """
    y, p = _check(y, p)
    if y.size == 0:
        return math.nan
    p = np.clip(p, LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with tied values given the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # Boundaries of runs of equal values in the sorted order.
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    mean_rank = (starts + ends + 1) / 2.0  # mean of (start+1 .. end), 1-based
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC by the Mann-Whitney rank statistic, ties averaged.

    Parameters
    ----------
    y : ndarray of int, shape (n,)
        0/1 labels.
    p : ndarray of float, shape (n,)
        Scores (higher = more likely 1).

    Returns
    -------
    float
        The AUC; NaN when only one class is present.

    Raises
    ------
    ValueError
        As :func:`log_loss`.
    """
    y, p = _check(y, p)
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the probabilities (NaN when empty); raises as :func:`log_loss`."""
    y, p = _check(y, p)
    return float(np.mean((p - y) ** 2)) if y.size else math.nan


def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Compute the expected calibration error over ``n_bins`` equal-width bins of p.

    Sum over bins of (bin share of pairs) x |mean p - mean y|; p = 1 falls in the last bin.
    NaN when empty. Raises as :func:`log_loss`.
    """
    y, p = _check(y, p)
    if y.size == 0:
        return math.nan
    b = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    b = np.maximum(b, 0)
    count = np.bincount(b, minlength=n_bins).astype(np.float64)
    sum_p = np.bincount(b, weights=p, minlength=n_bins)
    sum_y = np.bincount(b, weights=y, minlength=n_bins)
    nz = count > 0
    return float(np.sum(np.abs(sum_p[nz] - sum_y[nz])) / y.size)


def all_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Compute the four metrics of :data:`METRICS` plus ``n``, as a dict."""
    out = {
        "log_loss": log_loss(y, p),
        "auc": roc_auc(y, p),
        "brier": brier(y, p),
        "ece": ece(y, p),
    }
    out["n"] = int(np.asarray(y).size)
    return out


def _shrunk_rate(succ: np.ndarray, n: np.ndarray, prior: np.ndarray | float) -> np.ndarray:
    return (succ + BASELINE_PRIOR_COUNT * prior) / (n + BASELINE_PRIOR_COUNT)


def baselines(
    fit_model: np.ndarray,
    fit_bench: np.ndarray,
    fit_y: np.ndarray,
    pred_model: np.ndarray,
    pred_bench: np.ndarray,
    n_models: int,
    n_benchmarks: int,
) -> dict[str, np.ndarray]:
    """Predictions of the three empirical baselines.

    Each rate is shrunk towards its parent with :data:`BASELINE_PRIOR_COUNT` pseudo-responses
    (benchmark -> global, model -> global, (model, benchmark) -> benchmark) so that thin or
    empty cells fall back gracefully instead of predicting 0 or 1.

    Parameters
    ----------
    fit_model, fit_bench : ndarray of int, shape (n_fit,)
        Model and benchmark index of each known response (training + revealed labels).
    fit_y : ndarray of int, shape (n_fit,)
        Its 0/1 outcome.
    pred_model, pred_bench : ndarray of int, shape (n_pred,)
        Model and benchmark index of the pairs to predict.
    n_models, n_benchmarks : int
        Sizes of the index spaces.

    Returns
    -------
    dict of str to ndarray, shape (n_pred,)
        ``benchmark_rate``, ``model_accuracy`` and ``model_benchmark_accuracy``.

    Raises
    ------
    ValueError
        If there are no known responses to estimate rates from.
    """
    fit_y = np.asarray(fit_y, dtype=np.float64)
    if fit_y.size == 0:
        raise ValueError("baselines need at least one known response")
    glob = float(fit_y.mean())
    n_b = np.bincount(fit_bench, minlength=n_benchmarks).astype(np.float64)
    s_b = np.bincount(fit_bench, weights=fit_y, minlength=n_benchmarks)
    bench_rate = _shrunk_rate(s_b, n_b, glob)
    n_m = np.bincount(fit_model, minlength=n_models).astype(np.float64)
    s_m = np.bincount(fit_model, weights=fit_y, minlength=n_models)
    model_rate = _shrunk_rate(s_m, n_m, glob)
    cell = fit_model.astype(np.int64) * n_benchmarks + fit_bench
    n_mb = np.bincount(cell, minlength=n_models * n_benchmarks).astype(np.float64)
    s_mb = np.bincount(cell, weights=fit_y, minlength=n_models * n_benchmarks)
    mb_rate = _shrunk_rate(s_mb, n_mb, np.tile(bench_rate, n_models))
    pred_cell = pred_model.astype(np.int64) * n_benchmarks + pred_bench
    return {
        "benchmark_rate": bench_rate[pred_bench],
        "model_accuracy": model_rate[pred_model],
        "model_benchmark_accuracy": mb_rate[pred_cell],
    }
