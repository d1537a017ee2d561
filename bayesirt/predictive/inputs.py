"""The engine's inputs from a parsed data set: new items, evidence, neighbours, test pairs.

The one implementation used by ``bayesirt.pipeline`` (``bayesirt predict`` / ``acquire``)
and by the submission's ``glue.py``, so the package and the bundle feed the engine the same
arrays. ``data`` is anything with the attributes of ``bayesirt.data.IRTData`` (read by
attribute only: this module does not import ``bayesirt.data`` or pandas):

``model_ids``, ``item_ids``, ``benchmark_ids``, ``category_ids`` (sequences of str),
``model_idx``, ``item_idx``, ``response`` (training responses, shape (n_obs,)),
``item_benchmark``, ``item_category`` (shape (n_items,)), ``n_train_items``,
``item_embeddings`` (shape (n_items, d), or None) and, for :func:`test_pairs`,
``test_model_idx``, ``test_item_idx``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .draws import PosteriorDraws
from .items import ItemInfo, new_items_from_arrays
from .subjects import ModelInfo

__all__ = ["engine_inputs", "evidence", "neighbours", "new_items", "new_models", "test_pairs"]


def new_items(draws: PosteriorDraws, data: Any) -> dict[str, ItemInfo]:
    """Describe every item of ``data`` the posterior does not know.

    Parameters
    ----------
    draws : PosteriorDraws
    data : IRTData-like
        See the module docstring.

    Returns
    -------
    dict of str to ItemInfo
        The test items and any training item missing from the fit, in ``data.item_ids``
        order, with benchmark, ``"benchmark/category"`` and (when ``data`` has them) the
        embedding row: the embedding regression and the neighbour prior both read it.
    """
    known = set(draws.item_ids)
    rows = np.asarray([j for j, item in enumerate(data.item_ids) if item not in known],
                      dtype=np.int64)
    item_ids = np.asarray(data.item_ids, dtype=object)
    bench = np.asarray(data.benchmark_ids, dtype=object)
    cats = np.asarray(data.category_ids, dtype=object)
    emb = None if data.item_embeddings is None else np.asarray(data.item_embeddings)[rows]
    return new_items_from_arrays(
        item_ids[rows].tolist(),
        bench[np.asarray(data.item_benchmark)[rows]].tolist(),
        cats[np.asarray(data.item_category)[rows]].tolist(),
        emb,
    )


def new_models(draws: PosteriorDraws, data: Any) -> dict[str, ModelInfo]:
    """Describe every model of ``data`` the posterior does not know, from its metadata.

    Parameters
    ----------
    draws : PosteriorDraws
    data : IRTData-like
        ``model_ids``, ``model_org``, ``model_param_count``, ``model_is_instruct`` and
        (optionally) ``model_release_year``.

    Returns
    -------
    dict of str to ModelInfo
    """
    known = set(draws.model_ids)
    released = getattr(data, "model_release_year", None)
    out = {}
    for j, m in enumerate(data.model_ids):
        if m in known:
            continue
        out[m] = ModelInfo(
            org=str(data.model_org[j]) if data.model_org is not None else "",
            param_count=float(data.model_param_count[j]),
            is_instruct=float(data.model_is_instruct[j]),
            release_year=float(released[j]) if released is not None else float("nan"),
        )
    return out


def evidence(draws: PosteriorDraws, data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Training responses whose model or item the posterior lacks, folded in as evidence.

    Parameters
    ----------
    draws : PosteriorDraws
    data : IRTData-like

    Returns
    -------
    (model_ids, item_ids, y) or None
        Object arrays of str and int8 labels, shape (n_extra,), in training-file order; None
        when the posterior knows every model and item that ``data`` has responses for (as
        when it was fitted on ``data``).
    """
    known_models, known_items = set(draws.model_ids), set(draws.item_ids)
    model_unknown = np.array([m not in known_models for m in data.model_ids], dtype=bool)
    item_unknown = np.array([j not in known_items for j in data.item_ids], dtype=bool)
    extra = model_unknown[data.model_idx] | item_unknown[data.item_idx]
    if not extra.any():
        return None
    model_ids = np.asarray(data.model_ids, dtype=object)
    item_ids = np.asarray(data.item_ids, dtype=object)
    return (model_ids[data.model_idx[extra]], item_ids[data.item_idx[extra]],
            np.asarray(data.response[extra], dtype=np.int8))


def neighbours(data: Any) -> tuple[list[str], np.ndarray, tuple] | None:
    """Build the engine's ``neighbours``: training item ids, embeddings and responses.

    Parameters
    ----------
    data : IRTData-like

    Returns
    -------
    (item_ids, embeddings, (model_ids, item_ids, y)) or None
        The ``n_train_items`` training items' ids and embedding rows ``(n_train_items, d)``,
        and every training response (for the local ability offsets); None when ``data`` has
        no item embeddings (the neighbour prior is then not used).
    """
    if data.item_embeddings is None:
        return None
    n = data.n_train_items
    responses = (np.asarray(data.model_ids, dtype=object)[data.model_idx],
                 np.asarray(data.item_ids, dtype=object)[data.item_idx],
                 np.asarray(data.response, dtype=np.int8))
    return list(data.item_ids[:n]), np.asarray(data.item_embeddings[:n]), responses


def test_pairs(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``test_pairs.csv`` as ids.

    Parameters
    ----------
    data : IRTData-like
        Loaded with a test folder.

    Returns
    -------
    model_ids, item_ids : ndarray of str (object), shape (n_pairs,)
        In file order.

    Raises
    ------
    InputError
        If ``data`` has no test pairs.
    """
    if data.test_model_idx is None or data.test_item_idx is None:
        raise InputError("the data were loaded without a test folder: no test pairs")
    return (np.asarray(data.model_ids, dtype=object)[data.test_model_idx],
            np.asarray(data.item_ids, dtype=object)[data.test_item_idx])


def engine_inputs(draws: PosteriorDraws, data: Any, *, use_neighbours: bool = False
                  ) -> dict[str, Any]:
    """Keyword arguments of ``predict_pairs`` / ``score_pairs`` that come from the data.

    Parameters
    ----------
    draws : PosteriorDraws
    data : IRTData-like
    use_neighbours : bool
        Add ``neighbours`` (see :func:`neighbours`) when ``data`` has item embeddings.

    Returns
    -------
    dict
        ``new_items``, ``new_models``, ``evidence`` and, when asked for and possible,
        ``neighbours``.
    """
    out: dict[str, Any] = {"new_items": new_items(draws, data),
                           "new_models": new_models(draws, data),
                           "evidence": evidence(draws, data)}
    nb = neighbours(data) if use_neighbours else None
    if nb is not None:
        out["neighbours"] = nb
    return out
