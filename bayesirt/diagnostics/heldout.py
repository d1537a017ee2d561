"""Held-out metrics on NEW test items: log-loss, ROC-AUC, Brier, reliability and ECE.

Predictions come from ``bayesirt.predictive`` fed by ``bayesirt.predictive.inputs`` (the same
inputs as ``bayesirt predict``, without importing the pipeline and so JAX); when they cannot
be made, :func:`heldout_predictions` says so and the report shows why the section is empty
instead of failing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from bayesirt.errors import InputError

#: The organisers' log-loss clipping.
EPS = 1e-7


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood with p clipped to [1e-7, 1 - 1e-7]."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties counted half; NaN if one class."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(p, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the probabilities."""
    return float(np.mean((np.asarray(p, dtype=np.float64) - np.asarray(y)) ** 2))


def reliability(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Reliability diagram data and expected calibration error (equal-width bins).

    Parameters
    ----------
    y : ndarray (n,)
        0/1 outcomes.
    p : ndarray (n,)
        Predicted probabilities.
    n_bins : int, default 10
        Bins on [0, 1].

    Returns
    -------
    dict
        ``edges`` (n_bins + 1,), ``count``, ``mean_p``, ``frac_pos`` (n_bins,; NaN for empty
        bins) and ``ece`` = sum_b n_b / n * |frac_pos_b - mean_p_b|.
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    b = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    count = np.bincount(b, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(b, weights=p, minlength=n_bins) / count
        frac = np.bincount(b, weights=y, minlength=n_bins) / count
    ok = count > 0
    ece = float(np.sum(count[ok] / count.sum() * np.abs(frac[ok] - mean_p[ok])))
    return {"edges": edges, "count": count, "mean_p": mean_p, "frac_pos": frac, "ece": ece}


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Headline held-out metrics: ``log_loss``, ``auc``, ``brier``, ``ece``, ``n``, ``base_rate``.

    Raises
    ------
    ValueError
        If lengths differ, there are no pairs, or p has values outside [0, 1] or NaN.
    """
    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} must be equal, non-empty")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("predictions must lie in [0, 1] (found NaN or out-of-range values)")
    rel = reliability(y, p)
    return {"log_loss": log_loss(y, p), "auc": roc_auc(y, p), "brier": brier(y, p),
            "ece": rel["ece"], "n": int(y.size), "base_rate": float(np.mean(y))}


def locate(test_dir: str | os.PathLike) -> dict[str, Path]:
    """Find train/, test/ and the ground truth from a data-set root or its test/ folder.

    Parameters
    ----------
    test_dir : path-like
        A data-set root holding ``test/`` and ``reference/ground_truth.csv`` (and usually
        ``train/``), or the ``test/`` folder itself.

    Returns
    -------
    dict
        ``test_dir``, ``ground_truth`` and ``train_dir`` (may not exist) paths.

    Raises
    ------
    FileNotFoundError
        If no ``test_pairs.csv`` or no ``ground_truth.csv`` is found.
    """
    root = Path(test_dir)
    if (root / "test" / "test_pairs.csv").is_file():
        test = root / "test"
    elif (root / "test_pairs.csv").is_file():
        test, root = root, root.parent
    else:
        raise FileNotFoundError(f"{test_dir}: no test_pairs.csv in it or in its test/ folder")
    for cand in (root / "reference" / "ground_truth.csv", test / "ground_truth.csv",
                 test / "reference" / "ground_truth.csv"):
        if cand.is_file():
            return {"test_dir": test, "ground_truth": cand, "train_dir": root / "train"}
    raise FileNotFoundError(f"{test_dir}: no reference/ground_truth.csv found")


def heldout_predictions(
    tree: Any, posterior_path: str | os.PathLike, paths: dict[str, Path]
) -> tuple[pd.DataFrame | None, str]:
    """Predict every test pair with ``bayesirt.predictive``; the one place to switch over.

    Parameters
    ----------
    tree : xarray.DataTree
        The loaded posterior (400 evenly spaced draws converted in memory with
        ``bayesirt.posteriors.flat_arrays``).
    posterior_path : path-like
        The posterior file (for messages).
    paths : dict
        From :func:`locate`.

    Returns
    -------
    (pandas.DataFrame or None, str)
        Columns ``model_id``, ``item_id``, ``predicted_probability``, or None with the
        reason the predictions are not available.
    """
    from bayesirt import data as _data
    from bayesirt import predictive
    from bayesirt.posteriors import flat_arrays

    draws = predictive.PosteriorDraws.from_arrays(**flat_arrays(tree, max_draws=400))
    data = _data.load(paths["train_dir"], paths["test_dir"])
    model_ids, item_ids = predictive.inputs.test_pairs(data)
    probs = predictive.predict_pairs(draws, list(model_ids), list(item_ids),
                                     **predictive.inputs.engine_inputs(draws, data))
    frame = pd.DataFrame({"model_id": model_ids, "item_id": item_ids,
                          "predicted_probability": probs})
    if "predicted_probability" not in frame:
        raise InputError(f"predictions lack predicted_probability (columns {list(frame)})")
    return frame[["model_id", "item_id", "predicted_probability"]], ""


def join_truth(pred: pd.DataFrame, ground_truth: Path) -> tuple[np.ndarray, np.ndarray,
                                                                 pd.DataFrame]:
    """Match predictions to ``ground_truth.csv`` by (model_id, item_id).

    Returns
    -------
    (y, p, frame)
        Labels, probabilities and the joined table (with ``benchmark`` when item ids are
        ``benchmark:...``).

    Raises
    ------
    ValueError
        If a ground-truth pair has no prediction or pairs are duplicated.
    """
    truth = pd.read_csv(ground_truth, dtype={"model_id": str, "item_id": str})
    label = "label" if "label" in truth else "response"
    if pred.duplicated(["model_id", "item_id"]).any():
        raise InputError("duplicate (model_id, item_id) pairs among the predictions")
    joined = truth.merge(pred, on=["model_id", "item_id"], how="left")
    missing = joined["predicted_probability"].isna()
    if missing.any():
        row = joined[missing].iloc[0]
        raise InputError(
            f"{int(missing.sum())} ground-truth pairs have no prediction, e.g. "
            f"({row['model_id']}, {row['item_id']}) in {ground_truth}"
        )
    joined["benchmark"] = joined["item_id"].str.split(":", n=1).str[0]
    return (joined[label].to_numpy(dtype=np.int8),
            joined["predicted_probability"].to_numpy(dtype=np.float64), joined)
