"""What to label next: :func:`score_pairs` (BALD or EPIG) and the batch-aware greedy order.

BALD is ``H[E p] - E H[p]`` over draws and quadrature nodes: the mutual information between
a pair's label and the parameters. EPIG-style scores sum the mutual information between a
pair's label and the labels of the other candidate pairs of the same item (the predictions
that will be graded). The batch-aware order discounts further picks on an item by the Fisher
information already picked there, so a batch spreads over items.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import entr

from ..errors import InputError
from .draws import PosteriorDraws, _even_index
from .engine import _Engine
from .items import ItemInfo
from .labels import _as_pairs
from .subjects import ModelInfo
from .weights import _entropy, _group_by_item, _progress, _wsum

__all__ = ["score_pairs"]


def score_pairs(
    draws: PosteriorDraws,
    model_ids: Sequence[str],
    item_ids: Sequence[str],
    *,
    new_items: Mapping[str, ItemInfo] | None = None,
    new_models: Mapping[str, ModelInfo] | None = None,
    labels: Any = None,
    evidence: Any = None,
    method: str = "bald",
    batch_aware: bool = True,
    budget: int | None = None,
    quad_nodes: tuple[int, int] | int = (33, 9),
    max_draws: int | None = 1000,
    item_draws: int | None = 16,
    min_ess: float = 20.0,
    neighbours: tuple[Any, ...] | None = None,
    n_neighbours: int = 20,
    max_targets: int = 48,
    progress: bool = False,
) -> np.ndarray:
    """Score candidate pairs by how much labelling them is expected to inform.

    Parameters
    ----------
    draws : PosteriorDraws
    model_ids, item_ids : sequence of str, length n
        Candidate pairs.
    new_items, labels, evidence, max_draws, min_ess, neighbours, n_neighbours, progress
        As in :func:`predict_pairs`.
    quad_nodes : (int, int) or int
        As in :func:`predict_pairs`; default (33, 9): a ranking needs less precision.
    method : {"bald", "epig"}
        ``"bald"``: mutual information between the pair's label and the parameters,
        ``H[E p] - E H[p]`` over draws and quadrature nodes. ``"epig"``: expected
        information gain about the predictions that will be graded — the sum over the other
        candidate pairs on the same item of the mutual information between the two labels
        (estimated on at most ``max_targets`` target models per item, rescaled); labels on
        one item barely move predictions on other items, so only same-item targets count.
    batch_aware : bool
        When True the scores encode a greedy order (``score = n - rank``) that discounts each
        further pick on the same item by ``1 / (1 + v_j * I_j)``, with ``v_j`` the item's
        posterior difficulty variance and ``I_j`` the Fisher information already picked on
        it; the top-n pairs then spread over items instead of piling onto one.
    budget : int or None
        Order only the first ``budget`` picks greedily; the rest follow by raw score.
    item_draws : int or None
        As in :func:`predict_pairs`, default 16: scores need less precision than predictions.
    max_targets : int
        Target models per item for ``"epig"``.

    Returns
    -------
    ndarray of float64, shape (n,)
        Finite scores, higher = label first (raw information >= 0 when not batch-aware).

    Raises
    ------
    InputError
        As :func:`~.predict.predict_pairs`, or on an unknown ``method``.

    Warns
    -----
    ReweightingWarning, InputWarning
        As :func:`~.predict.predict_pairs`.
    """
    if method not in ("bald", "epig"):
        raise InputError(f"method must be 'bald' or 'epig', got {method!r}")
    models, items = _as_pairs(model_ids, item_ids)
    n = models.shape[0]
    eng = _Engine(draws, models, items, new_items, labels, evidence, quad_nodes, max_draws,
                  min_ess, item_draws, neighbours, n_neighbours, new_models)
    raw = np.zeros(n)
    fisher = np.zeros(n)
    groups = _group_by_item(items)
    var_b: dict[str, float] = {}
    for item, rows in _progress(groups, len(groups), progress, "score"):
        st = eng.item_state(item)
        mi = np.asarray([eng.model_index[m] for m in models[rows].tolist()], dtype=np.int64)
        w = st.w.reshape(-1)
        mean_b = float(w @ st.b.reshape(-1))
        var_b[item] = max(float(w @ (st.b.reshape(-1) - mean_b) ** 2), 0.0)
        alpha2 = float(w @ st.alpha.reshape(-1) ** 2)
        step = max(1, int(8e6 // max(w.size, 1)))
        for lo in range(0, rows.size, step):
            sl = slice(lo, lo + step)
            P = eng.probs(st, mi[sl])  # (S_j * N, n_chunk) float32
            pbar = np.clip(_wsum(w.astype(np.float32), P), 0.0, 1.0)
            fisher[rows[sl]] = pbar * (1 - pbar) * alpha2
            if method == "bald":
                eh = _wsum(w.astype(np.float32), entr(P) + entr(1.0 - P))
                raw[rows[sl]] = np.maximum(_entropy(pbar) - eh, 0.0)
        if method == "epig":
            raw[rows] = _epig_item(eng.probs(st, mi), w, mi, max_targets)
    eng.finish_warnings()
    raw = np.where(np.isfinite(raw), raw, 0.0)
    if not batch_aware:
        return raw
    return _greedy_order(raw, fisher, items, var_b, budget)


def _epig_item(P: np.ndarray, w: np.ndarray, mi: np.ndarray, max_targets: int) -> np.ndarray:
    """Sum over the other same-item pairs of the mutual information I(y_c; y_t).

    Parameters
    ----------
    P : ndarray of float32, shape (S_j * N, n_item)
        P(y=1) of each candidate at every weighted (draw, node) point of the item.
    w : ndarray, shape (S_j * N,)
        The points' weights (sum 1).
    mi : ndarray of int64, shape (n_item,)
        Model index of each candidate.
    max_targets : int
        Target pairs used (evenly spaced); the sum is rescaled to all ``n_item - 1``.

    Returns
    -------
    ndarray of float64, shape (n_item,)
    """
    n = P.shape[1]
    if n < 2:
        return np.zeros(n)
    t = _even_index(n, min(n, max_targets))
    pc = _wsum(w.astype(np.float32), P)  # (n,)
    Pt = P[:, t]
    p11 = ((P * w.astype(np.float32)[:, None]).T @ Pt).astype(np.float64)  # (n, T)
    pc = pc.astype(np.float64)
    a = pc[:, None]
    b = pc[t][None, :]
    cells = [(p11, a * b), (a - p11, a * (1 - b)), (b - p11, (1 - a) * b),
             (1 - a - b + p11, (1 - a) * (1 - b))]
    mi_ct = np.zeros_like(p11)
    for joint, indep in cells:
        joint = np.clip(joint, 1e-300, 1.0)
        mi_ct += joint * (np.log(joint) - np.log(np.clip(indep, 1e-300, 1.0)))
    mi_ct = np.maximum(mi_ct, 0.0)
    mi_ct[mi[:, None] == mi[t][None, :]] = 0.0  # a pair tells nothing new about itself here
    return mi_ct.sum(axis=1) * (n - 1) / max(len(t) - (1 if len(t) == n else 0), 1)


def _greedy_order(
    raw: np.ndarray,
    fisher: np.ndarray,
    items: np.ndarray,
    var_b: Mapping[str, float],
    budget: int | None,
) -> np.ndarray:
    """Greedy batch order: each further pick on an item discounted by its picked information.

    Parameters
    ----------
    raw : ndarray, shape (n,)
        Raw scores (BALD or EPIG).
    fisher : ndarray, shape (n,)
        Fisher information of each pair about its item's difficulty.
    items : ndarray of str (object), shape (n,)
        Item of each pair.
    var_b : mapping of str to float
        Posterior difficulty variance of each item.
    budget : int or None
        Picks ordered greedily; the rest follow by raw score.

    Returns
    -------
    ndarray of float64, shape (n,)
        ``n - rank`` (the first pick scores ``n``).
    """
    n = raw.shape[0]
    limit = n if budget is None else max(0, min(int(budget), n))
    per_item: dict[str, list[int]] = {}
    for idx in np.argsort(-raw, kind="stable").tolist():
        per_item.setdefault(items[idx], []).append(idx)
    heap: list[tuple[float, int, str]] = []
    pointer: dict[str, int] = {}
    info: dict[str, float] = {}
    for item, cands in per_item.items():
        pointer[item] = 0
        info[item] = 0.0
        heap.append((-raw[cands[0]], cands[0], item))
    heapq.heapify(heap)
    order: list[int] = []
    while heap and len(order) < limit:
        _, idx, item = heapq.heappop(heap)
        order.append(idx)
        info[item] += fisher[idx]
        pointer[item] += 1
        cands = per_item[item]
        if pointer[item] < len(cands):
            nxt = cands[pointer[item]]
            disc = 1.0 / (1.0 + var_b[item] * info[item])
            heapq.heappush(heap, (-raw[nxt] * disc, nxt, item))
    chosen = np.zeros(n, dtype=bool)
    chosen[order] = True
    rest = [i for i in np.argsort(-raw, kind="stable").tolist() if not chosen[i]]
    full = order + rest
    score = np.empty(n)
    score[np.asarray(full, dtype=np.int64)] = n - np.arange(n, dtype=np.float64)
    return score

