"""Posterior predictive probabilities for (model, item) pairs: :func:`predict_pairs`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .draws import PosteriorDraws
from .engine import _Engine
from .items import ItemInfo
from .labels import _as_pairs
from .subjects import ModelInfo
from .weights import P_MIN, _group_by_item, _progress

__all__ = ["predict_pairs"]


def predict_pairs(
    draws: PosteriorDraws,
    model_ids: Sequence[str],
    item_ids: Sequence[str],
    *,
    new_items: Mapping[str, ItemInfo] | None = None,
    new_models: Mapping[str, ModelInfo] | None = None,
    labels: Any = None,
    evidence: Any = None,
    quad_nodes: tuple[int, int] | int = (49, 13),
    max_draws: int | None = 1000,
    item_draws: int | None = 32,
    min_ess: float = 20.0,
    neighbours: tuple[Any, ...] | None = None,
    n_neighbours: int = 20,
    progress: bool = False,
) -> np.ndarray:
    """Posterior predictive P(correct) for (model, item) pairs.

    Parameters
    ----------
    draws : PosteriorDraws
        The posterior (see :func:`load_flat`).
    model_ids, item_ids : sequence of str, length n
        The pairs to predict. Items must be known to the posterior or described in
        ``new_items``; models unknown to the posterior get abilities from the population
        prior given their labels/evidence (see :mod:`.unknown`).
    new_items : mapping of str to ItemInfo, optional
        Description (benchmark, category, embedding) of items the posterior does not know.
    new_models : mapping of str to ModelInfo, optional
        Metadata of models the posterior does not know (their ability prior, when the
        posterior was fitted with metadata; see :mod:`.subjects`).
    labels : optional
        Revealed labels: ``(model_ids, item_ids, y)`` arrays, a list of such triples, or a
        list of dicts with ``model_id``, ``item_id`` and a label key (``response``, ``label``,
        ``correct``, ``is_correct``, ``y`` or ``value``). Labels on new items condition the
        item within each draw (quadrature); labels on known items re-weight the draws.
    evidence : optional
        Extra responses the posterior lacks (same formats); treated exactly like labels.
    quad_nodes : (int, int) or int
        Trapezoid nodes for a new item's standardised difficulty (over +-6 sd) and
        log-discrimination (over +-4 sd); an int sets the difficulty nodes with 13 for
        log-discrimination. Rasch posteriors use one log-discrimination node. With labels the
        grid is centred and scaled on the item's posterior.
    max_draws : int or None
        Thin the draws evenly to at most this many (None: all) for everything.
    item_draws : int or None
        Draws (evenly spaced among those kept) within which NEW items are integrated by
        quadrature (None: all). Known items always use every kept draw.
    min_ess : float
        Effective-sample-size floor of the importance weights before the fallbacks apply.
    neighbours : (item_ids, embeddings) or (item_ids, embeddings, responses), optional
        Embeddings ``(n, d)`` of fitted (training) items, by id. When given, a new item's
        difficulty prior is refined by its ``n_neighbours`` most similar fitted items
        (empirical Bayes, see :mod:`.neighbours`); new items need embeddings.
        With the training responses ``(model_ids, item_ids, y)`` as a third element, each
        model also gets a local ability offset on each new item from its residuals on those
        neighbours.
    n_neighbours : int
        Neighbours per new item.
    progress : bool
        Show a tqdm bar over items (when tqdm is installed).

    Returns
    -------
    ndarray of float64, shape (n,)
        Probabilities in ``[1e-6, 1 - 1e-6]``.

    Raises
    ------
    InputError
        On an item that is neither known nor in ``new_items``, labels that are not 0/1,
        mismatched lengths, or malformed ``new_items`` embeddings.
    TypeError
        On labels in an unsupported container, or ``new_items`` values that are not ItemInfo.

    Warns
    -----
    ReweightingWarning
        When importance weights collapse and a fallback is used.
    InputWarning
        When pairs or label rows name models that are neither in the posterior nor in
        ``evidence`` (one line each: how many, which, what prior they get).
    """
    models, items = _as_pairs(model_ids, item_ids)
    eng = _Engine(draws, models, items, new_items, labels, evidence, quad_nodes, max_draws,
                  min_ess, item_draws, neighbours, n_neighbours, new_models)
    out = np.empty(models.shape[0])
    groups = _group_by_item(items)
    for item, rows in _progress(groups, len(groups), progress, "predict"):
        st = eng.item_state(item)
        mi = np.asarray([eng.model_index[m] for m in models[rows].tolist()], dtype=np.int64)
        out[rows] = eng.mean_probs(st, mi)
    eng.finish_warnings()
    out = np.where(np.isfinite(out), out, 0.5)
    return np.clip(out, P_MIN, 1.0 - P_MIN)

