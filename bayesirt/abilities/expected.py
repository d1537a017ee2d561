"""Expected accuracy: an ability score on the scale of per-model accuracy, free of coverage.

Per-model accuracy depends on which benchmarks (and items) a model happened to take. The
posterior instead predicts every model on every item of every benchmark it holds, so the
score here is a model's *expected accuracy on the whole item pool*: within one posterior
draw, the mean over each benchmark's items of P(correct), averaged over benchmarks with
equal weight (a 10,000-item benchmark does not outweigh a 100-item one). Cells a model never
took are predicted through the general ability, as everywhere else.
"""

from __future__ import annotations

import numpy as np

from bayesirt.errors import InputError

__all__ = ["expected_accuracy"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def expected_accuracy(
    ability: np.ndarray,
    difficulty: np.ndarray,
    log_discrimination: np.ndarray,
    item_benchmark: np.ndarray,
    guess: np.ndarray | None = None,
    *,
    chunk: int = 64,
) -> np.ndarray:
    r"""Per draw, each model's mean P(correct) over the item pool (benchmarks weighted equally).

    :math:`E_{sm} = \frac{1}{K}\sum_k \frac{1}{J_k}\sum_{j \in k}
    \big[g_k + (1-g_k)\,\mathrm{logit}^{-1}(a_j(\theta_{mk} - b_j))\big]` in draw :math:`s`.

    Parameters
    ----------
    ability : ndarray, shape (S, n_models, n_benchmarks)
    difficulty, log_discrimination : ndarray, shape (S, n_items)
    item_benchmark : ndarray of int, shape (n_items,)
    guess : ndarray, shape (S, n_benchmarks), optional
        Lower asymptote per benchmark (``--guess`` fits).
    chunk : int
        Draws evaluated at once (memory: chunk x n_models x n_items floats).

    Returns
    -------
    ndarray of float64, shape (S, n_models)
        In [0, 1]. Benchmarks without items are left out of the average.

    Raises
    ------
    InputError
        If the shapes disagree.
    """
    ability = np.asarray(ability, dtype=np.float64)
    b = np.asarray(difficulty, dtype=np.float64)
    a = np.exp(np.asarray(log_discrimination, dtype=np.float64))
    item_benchmark = np.asarray(item_benchmark, dtype=np.int64)
    if ability.ndim != 3 or b.shape != a.shape or b.shape[0] != ability.shape[0] \
            or b.shape[1] != item_benchmark.size:
        raise InputError(
            f"expected_accuracy: ability {ability.shape}, difficulty {b.shape}, "
            f"log_discrimination {a.shape} and item_benchmark {item_benchmark.shape} do not "
            "match (S, models, benchmarks) / (S, items) / (items,)")
    n_draws, n_models, n_benchmarks = ability.shape
    total = np.zeros((n_draws, n_models))
    used = 0
    for k in range(n_benchmarks):
        items = np.flatnonzero(item_benchmark == k)
        if items.size == 0:
            continue
        used += 1
        for lo in range(0, n_draws, chunk):
            sl = slice(lo, lo + chunk)
            eta = a[sl, None, items] * (ability[sl, :, k, None] - b[sl, None, items])
            p = _sigmoid(eta).mean(-1)
            if guess is not None:
                g = np.asarray(guess, dtype=np.float64)[sl, k, None]
                p = g + (1.0 - g) * p
            total[sl] += p
    if used == 0:
        raise InputError("expected_accuracy: no benchmark has items")
    return total / used
