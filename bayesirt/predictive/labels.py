"""In-memory labels and pairs: the record formats the engine accepts, as id arrays.

Files are parsed by ``bayesirt.data`` (``read_labeled_pairs``, ``load``); here are only the
in-memory forms a caller may pass as ``labels`` or ``evidence``: ``(model_ids, item_ids, y)``
arrays, a list of ``(model_id, item_id, y)`` triples, or a list of dicts with ``model_id``,
``item_id`` and a label key (:data:`LABEL_KEYS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

#: Keys a label may have in a record (the first present wins), as in ``bayesirt.data``.
LABEL_KEYS = ("response", "label", "correct", "is_correct", "y", "value")


@dataclass(frozen=True)
class LabelRows:
    """Labels and evidence of one engine call as index arrays, one entry per response.

    Attributes
    ----------
    mi : ndarray of int64, shape (L,)
        Model index: the posterior's models first, then the unknown ones.
    known : ndarray of bool, shape (L,)
        Whether the item is one of the posterior's (fitted) items.
    ii : ndarray of int64, shape (L,)
        Index into the posterior's items where ``known``, else into the new items.
    sign : ndarray of float64, shape (L,)
        ``2 y - 1``.
    """

    mi: np.ndarray
    known: np.ndarray
    ii: np.ndarray
    sign: np.ndarray


def _parse_labels(labels: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read in-memory labels into id and label arrays.

    Parameters
    ----------
    labels : tuple of arrays, list of triples, list of dict, or None
        ``(model_ids, item_ids, y)`` arrays, ``(model_id, item_id, y)`` triples, or dicts
        with ``model_id``, ``item_id`` and a key of :data:`LABEL_KEYS`; None or empty: none.
    name : str
        What the labels are (``"labels"``, ``"evidence"``), for messages.

    Returns
    -------
    model_ids, item_ids : ndarray of str (object), shape (L,)
    y : ndarray of int8, shape (L,)
        0 or 1.

    Raises
    ------
    InputError
        On a record without the keys (naming the keys seen), unequal lengths, or a label
        other than 0/1 (naming the row).
    TypeError
        On an unsupported container.
    """
    empty = (np.array([], dtype=object), np.array([], dtype=object), np.array([], dtype=np.int8))
    if labels is None:
        return empty
    if isinstance(labels, (list, tuple)) and len(labels) == 0:
        return empty
    if isinstance(labels, (list, tuple)) and isinstance(labels[0], Mapping):
        keys = LABEL_KEYS
        models, items, ys = [], [], []
        for i, rec in enumerate(labels):
            key = next((k for k in keys if k in rec), None)
            if key is None or "model_id" not in rec or "item_id" not in rec:
                raise InputError(
                    f"{name}[{i}] needs model_id, item_id and a label key ({', '.join(keys)}); "
                    f"keys seen: {sorted(rec)}"
                )
            models.append(rec["model_id"])
            items.append(rec["item_id"])
            ys.append(rec[key])
        triple = (models, items, ys)
    elif isinstance(labels, (list, tuple)) and len(labels) == 3 and _is_column(labels[0]) and (
        _is_column(labels[2]) and all(_numeric_like(v) for v in labels[2])
    ):
        triple = labels
    elif isinstance(labels, (list, tuple)) and all(
        _is_column(t) and len(t) == 3 for t in labels
    ):
        triple = tuple(zip(*labels, strict=True))
    else:
        raise TypeError(
            f"{name} must be (model_ids, item_ids, y) arrays, a list of (model_id, item_id, y) "
            f"triples or a list of dicts; got {type(labels).__name__}"
        )
    models = np.asarray([str(m) for m in triple[0]], dtype=object)
    items = np.asarray([str(i) for i in triple[1]], dtype=object)
    if len(models) != len(items) or len(models) != len(triple[2]):
        raise InputError(f"{name}: model_ids, item_ids and y have different lengths")
    y_raw = triple[2]
    ys = np.empty(len(models), dtype=np.int8)
    for i, v in enumerate(y_raw):
        try:
            f = float(v.strip()) if isinstance(v, str) else float(v)
        except (TypeError, ValueError):
            f = float("nan")
        if f not in (0.0, 1.0):
            raise InputError(
                f"{name} row {i} ({models[i]!r}, {items[i]!r}): label must be 0 or 1, got {v!r}"
            )
        ys[i] = int(f)
    return models, items, ys


def _numeric_like(v: Any) -> bool:
    if isinstance(v, (str, bytes)):
        try:
            float(v)
        except ValueError:
            return False
        return True
    return not _is_column(v)


def _is_column(x: Any) -> bool:
    return isinstance(x, (list, tuple, np.ndarray)) and not isinstance(x, (str, bytes))


def _as_pairs(model_ids: Any, item_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return the pairs as two object arrays of str, shape (n,); raise on unequal lengths."""
    models = np.asarray([str(m) for m in model_ids], dtype=object)
    items = np.asarray([str(i) for i in item_ids], dtype=object)
    if models.shape != items.shape:
        raise InputError(
            f"model_ids and item_ids differ in length: {models.shape[0]} vs {items.shape[0]}"
        )
    return models, items
