"""How a caller describes the items the posterior does not know (new items).

A new item needs only its benchmark; its category and embedding, when given, shift its prior
difficulty mean (category offset, embedding regression, neighbour prior). The engine
integrates such an item over its prior within each draw (see :mod:`.prior`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["ItemInfo", "new_items_from_arrays"]


@dataclass(frozen=True)
class ItemInfo:
    """How a caller describes an item the posterior does not know.

    Attributes
    ----------
    benchmark_id : str
        Its benchmark (an unknown benchmark is drawn from the population of benchmarks).
    category_id : str or None
        Its category as ``"benchmark/category"`` (None or unknown: no category offset).
    embedding : ndarray, shape (embedding_dim,), optional
        Its embedding row; without it the embedding term of the prior mean is 0.
    """

    benchmark_id: str
    category_id: str | None = None
    embedding: np.ndarray | None = None


def new_items_from_arrays(
    item_ids: Sequence[str],
    benchmark_ids: Sequence[str],
    category_ids: Sequence[str | None] | None = None,
    embeddings: np.ndarray | None = None,
) -> dict[str, ItemInfo]:
    """Build the ``new_items`` mapping from parallel arrays.

    Parameters
    ----------
    item_ids, benchmark_ids : sequence of str, length n
    category_ids : sequence of str or None, length n, optional
        ``"benchmark/category"`` strings.
    embeddings : ndarray, shape (n, d), optional

    Returns
    -------
    dict of str to ItemInfo

    Raises
    ------
    InputError
        On length mismatches or duplicate item ids.
    """
    n = len(item_ids)
    if len(benchmark_ids) != n or (category_ids is not None and len(category_ids) != n):
        raise InputError("item_ids, benchmark_ids and category_ids must have the same length")
    if embeddings is not None:
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or embeddings.shape[0] != n:
            raise InputError(f"embeddings must be ({n}, d), got {embeddings.shape}")
    out: dict[str, ItemInfo] = {}
    for i, item in enumerate(item_ids):
        item = str(item)
        if item in out:
            raise InputError(f"duplicate new item id {item!r} (row {i})")
        out[item] = ItemInfo(
            benchmark_id=str(benchmark_ids[i]),
            category_id=None if category_ids is None or category_ids[i] is None
            else str(category_ids[i]),
            embedding=None if embeddings is None else embeddings[i],
        )
    return out

