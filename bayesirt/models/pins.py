"""Fit-free estimates of how tightly the data pin a group's values (for the parameterisation).

Both work on the crude logit of each item's raw proportion correct, ``d_j = log((wrong + 0.5)
/ (correct + 0.5))``, so they need no fit and are scale-free ratios: :func:`category_pin`
(a category mean against the spread between its benchmark's categories) and
:func:`item_mean_pin` (an item's noise against the spread between items); and
:func:`category_anchors`, the benchmarks whose mean is pinned through one category only.
``bayesirt.models.inputs`` turns them into the centred / non-centred choices.
"""

from __future__ import annotations

import numpy as np


def item_mean_pin(
    n_answered: np.ndarray,
    n_correct: np.ndarray,
    item_category: np.ndarray,
    item_benchmark: np.ndarray,
    noncentred: np.ndarray,
    n_benchmarks: int,
) -> np.ndarray:
    """How noisy each item's difficulty is, relative to the spread between items, per benchmark.

    The same crude, fit-free logits as :func:`category_pin`, ``d_j = log((wrong + 0.5) /
    (correct + 0.5))``, over a benchmark's non-centred items: their sampling variance
    ``1 / (correct + 0.5) + 1 / (wrong + 0.5)`` averaged (the noise) against the variance of
    the ``d_j`` around their category means minus that noise (the items' true spread, by
    moments). Few responses per item make the ratio large; many, small.

    Returns
    -------
    ndarray, shape (n_benchmarks,)
        ``noise sd / spread sd`` (``inf`` where the spread is 0 or there are < 2 such items).
    """
    n_answered = np.asarray(n_answered, dtype=np.float64)
    n_correct = np.asarray(n_correct, dtype=np.float64)
    crude = np.log((n_answered - n_correct + 0.5) / (n_correct + 0.5))
    noise = 1.0 / (n_correct + 0.5) + 1.0 / (n_answered - n_correct + 0.5)
    keep = np.asarray(noncentred, bool) & (n_answered > 0)
    ratio = np.full(n_benchmarks, np.inf)
    for k in range(n_benchmarks):
        sel = keep & (np.asarray(item_benchmark) == k)
        if sel.sum() < 2:
            continue
        cats = np.asarray(item_category)[sel]
        dev = crude[sel].copy()
        for c in np.unique(cats):
            dev[cats == c] -= dev[cats == c].mean()
        spread = dev.var() - noise[sel].mean()
        if spread > 0:
            ratio[k] = float(np.sqrt(noise[sel].mean() / spread))
    return ratio


def category_pin(
    n_answered: np.ndarray,
    n_correct: np.ndarray,
    item_category: np.ndarray,
    category_benchmark: np.ndarray,
    free_category: np.ndarray,
) -> np.ndarray:
    """How tightly its items pin each free category's mean, relative to the category spread.

    A crude, fit-free estimate on the logit scale of the raw proportions: per item
    ``d_j = log((wrong + 0.5) / (correct + 0.5))``; per category the standard error ``se_c``
    of the mean of its ``d_j`` (pooled within-category sd over sqrt(items)); per benchmark
    the between-category sd ``tau`` by moments (variance of the category means minus their
    mean squared standard error, floored at 0). Noisy items (few models) and widely spread
    items inflate ``se_c``; categories that do not differ give ``tau = 0``. The ratio is
    scale-free, so the crude logit scale does not matter.

    Returns
    -------
    ndarray, shape (n_free_categories,)
        ``se_c / tau_k`` (``inf`` where ``tau_k`` is 0).
    """
    n_answered = np.asarray(n_answered, dtype=np.float64)
    crude = np.log((n_answered - n_correct + 0.5) / (n_correct + 0.5))
    free = np.asarray(free_category)
    ratio = np.full(free.size, np.inf)
    bench_of_free = np.asarray(category_benchmark)[free]
    for k in np.unique(bench_of_free):
        cats = free[bench_of_free == k]
        values = [crude[item_category == c] for c in cats]
        means = np.array([v.mean() for v in values])
        sizes = np.array([v.size for v in values], dtype=np.float64)
        resid = np.concatenate([v - v.mean() for v in values])
        dof = max(resid.size - cats.size, 1)
        se = np.sqrt(np.sum(resid**2) / dof) / np.sqrt(sizes)
        tau2 = float(np.var(means, ddof=1) - np.mean(se**2))
        if tau2 > 0:
            ratio[bench_of_free == k] = se / np.sqrt(tau2)
    return ratio


def category_anchors(category_centred: np.ndarray, free_category_slot: np.ndarray,
                     multi_benchmark: np.ndarray, n_benchmarks: int,
                     category_pin: np.ndarray | None = None,
                     pin_ratio: float = 0.25) -> dict | None:
    """Benchmarks whose mean is written relative to their one centred category.

    ``bayesirt.models.inputs.CATEGORY_ANCHOR`` says why; ``irt`` samples them with
    :func:`bayesirt.models.population.anchored_categories`.

    Parameters
    ----------
    category_centred : ndarray, shape (n_free_categories,)
        1 where a free category's mean is sampled centred.
    free_category_slot : ndarray of int, shape (n_free_categories,)
        Each free category's multi-category benchmark (its slot in ``multi_benchmark``).
    multi_benchmark : ndarray of int, shape (n_multi,)
    n_benchmarks : int
    category_pin : ndarray of float, shape (n_free_categories,), optional
        ``se_c / tau_k`` from :func:`category_pin`: a benchmark is anchored only where some
        category's ratio is above ``pin_ratio`` (its spread may be small). None skips that
        condition.
    pin_ratio : float
        ``bayesirt.models.inputs.CATEGORY_PIN_RATIO`` (the ratio below which a category
        mean counts as pinned inside the spread).

    Returns
    -------
    dict or None
        None where no benchmark has exactly one centred category; else
        ``category_anchor`` (n_free_categories,) 1 at each anchoring category,
        ``anchor_position`` (n_multi,) int32, the anchoring category's position among the
        free categories (0 where none), and ``benchmark_anchored`` (n_benchmarks,) 1 where
        the benchmark's mean is so written (float32 0/1).
    """
    centred = np.asarray(category_centred) > 0
    slot = np.asarray(free_category_slot)
    n_multi = len(multi_benchmark)
    per_slot = np.bincount(slot[centred], minlength=n_multi)
    anchored_slot = per_slot == 1
    if category_pin is not None:
        loose = np.asarray(category_pin) > pin_ratio
        anchored_slot &= np.bincount(slot[loose], minlength=n_multi) > 0
    if not anchored_slot.any():
        return None
    is_anchor = centred & anchored_slot[slot]
    position = np.zeros(n_multi, np.int32)
    position[slot[is_anchor]] = np.flatnonzero(is_anchor)
    anchored = np.zeros(n_benchmarks, np.float32)
    anchored[np.asarray(multi_benchmark)[anchored_slot]] = 1.0
    return {"category_anchor": is_anchor.astype(np.float32), "anchor_position": position,
            "benchmark_anchored": anchored}
