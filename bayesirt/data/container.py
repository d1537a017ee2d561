"""The data container :class:`IRTData`: validated, read-only index arrays and id maps.

Part of :mod:`bayesirt.data` (see its docstring: what is read, how errors are said, and why
only numpy, pandas and the standard library may be imported).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError  # relative: data/ also ships in the bundle's runtime


class DataWarning(UserWarning):
    """Something in the data is allowed but worth knowing (unknown test model, item overlap)."""


def _ro(array: np.ndarray) -> np.ndarray:
    """Return ``array`` marked read-only, so a frozen IRTData cannot be changed in place."""
    array.setflags(write=False)
    return array


def _index_array(value: Any, name: str, dtype: Any = np.int32) -> np.ndarray:
    """Coerce ``value`` to a 1-d array of ``dtype``; raise naming ``name`` when impossible."""
    array = np.asarray(value)
    if array.ndim != 1:
        raise InputError(f"IRTData.{name} must be 1-d, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iub":
        raise TypeError(f"IRTData.{name} must hold integers, got dtype {array.dtype}")
    return _ro(np.array(array, dtype=dtype))


def _check_range(array: np.ndarray, upper: int, name: str, what: str) -> None:
    """Raise ValueError when an index in ``array`` falls outside ``[0, upper)``."""
    bad = np.flatnonzero((array < 0) | (array >= upper))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"IRTData.{name}[{i}] = {int(array[i])} is out of range for {upper} {what}"
        )


@dataclass(frozen=True, eq=False, repr=False)
class IRTData:
    """Validated response data: long-form index arrays plus the id <-> index maps.

    Made by :func:`load`; it may also be built directly (simulations, tests), in which case
    the arrays are coerced to the dtypes below and checked. All arrays are read-only.

    Attributes
    ----------
    model_ids : tuple of str, (n_models,)
        Training models (sorted), then models seen only in test pairs (sorted).
    item_ids : tuple of str, (n_items,)
        Training items in ``train_items.csv`` order, then new test items in
        ``test_items.csv`` order.
    benchmark_ids : tuple of str, (n_benchmarks,)
        Sorted benchmark names.
    category_ids : tuple of str, (n_categories,)
        Sorted ``"benchmark/category"`` strings.
    model_idx, item_idx : ndarray of int32, (n_obs,)
        Model and item index of each training response (file order).
    response : ndarray of int8, (n_obs,)
        The training responses, 0 or 1.
    item_benchmark : ndarray of int32, (n_items,)
        Benchmark index of each item.
    item_category : ndarray of int32, (n_items,)
        Category index of each item.
    category_benchmark : ndarray of int32, (n_categories,)
        Benchmark index of each category.
    n_train_items : int
        Items ``0 .. n_train_items - 1`` are training items; responses only refer to them.
    n_train_models : int
        Models ``0 .. n_train_models - 1`` have training responses.
    item_embeddings : ndarray of float32, (n_items, d), or None
        Item embeddings, training rows then test rows.
    model_param_count : ndarray of float64, (n_models,)
        Parameter count, NaN where unknown.
    model_org : tuple of str, (n_models,)
        Organisation, ``""`` where unknown.
    model_is_instruct : ndarray of float64, (n_models,)
        1.0 (instruct / chat), 0.0 (base) or NaN (unknown).
    model_release_year : ndarray of float64, (n_models,)
        Release date as a fractional year (2024.5 = early July 2024), NaN where unknown.
    test_model_idx, test_item_idx : ndarray of int32, (n_test,), or None
        The rows of ``test_pairs.csv`` in file order; None without a test folder.
    fingerprint : str
        sha256 (hex) over the training files' bytes; see :func:`fingerprint_files`.
    source : str
        Where the data came from (a path).

    Raises
    ------
    ValueError
        On construction, when shapes disagree or an index is out of range.
    TypeError
        When an index array does not hold integers.
    """

    model_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    benchmark_ids: tuple[str, ...]
    category_ids: tuple[str, ...]
    model_idx: np.ndarray
    item_idx: np.ndarray
    response: np.ndarray
    item_benchmark: np.ndarray
    item_category: np.ndarray
    category_benchmark: np.ndarray
    n_train_items: int | None = None
    n_train_models: int | None = None
    item_embeddings: np.ndarray | None = None
    model_param_count: np.ndarray | None = None
    model_org: tuple[str, ...] | None = None
    model_is_instruct: np.ndarray | None = None
    model_release_year: np.ndarray | None = None
    test_model_idx: np.ndarray | None = None
    test_item_idx: np.ndarray | None = None
    fingerprint: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        """Coerce dtypes, fill defaults, and check every shape and index range."""
        # object.__setattr__ is the documented way to normalise fields of a frozen dataclass.
        put = object.__setattr__
        for name in ("model_ids", "item_ids", "benchmark_ids", "category_ids"):
            ids = tuple(str(v) for v in getattr(self, name))
            if len(set(ids)) != len(ids):
                raise InputError(f"IRTData.{name} holds duplicate ids")
            put(self, name, ids)
        n_models, n_items = len(self.model_ids), len(self.item_ids)
        n_bench, n_cat = len(self.benchmark_ids), len(self.category_ids)
        for name in ("model_idx", "item_idx", "item_benchmark", "item_category",
                     "category_benchmark"):
            put(self, name, _index_array(getattr(self, name), name))
        put(self, "response", _index_array(self.response, "response", np.int8))
        n_train_items = n_items if self.n_train_items is None else int(self.n_train_items)
        n_train_models = n_models if self.n_train_models is None else int(self.n_train_models)
        if not 0 <= n_train_items <= n_items:
            raise InputError(f"IRTData.n_train_items = {n_train_items} not in [0, {n_items}]")
        if not 0 <= n_train_models <= n_models:
            raise InputError(f"IRTData.n_train_models = {n_train_models} not in [0, {n_models}]")
        put(self, "n_train_items", n_train_items)
        put(self, "n_train_models", n_train_models)
        n_obs = self.model_idx.shape[0]
        for name in ("item_idx", "response"):
            if getattr(self, name).shape[0] != n_obs:
                raise InputError(
                    f"IRTData.{name} has {getattr(self, name).shape[0]} entries but model_idx "
                    f"has {n_obs}"
                )
        for name, length, what in (("item_benchmark", n_items, "items"),
                                   ("item_category", n_items, "items"),
                                   ("category_benchmark", n_cat, "categories")):
            if getattr(self, name).shape[0] != length:
                raise InputError(
                    f"IRTData.{name} has {getattr(self, name).shape[0]} entries for "
                    f"{length} {what}"
                )
        _check_range(self.model_idx, n_train_models, "model_idx", "training models")
        _check_range(self.item_idx, n_train_items, "item_idx", "training items")
        _check_range(self.item_benchmark, n_bench, "item_benchmark", "benchmarks")
        _check_range(self.item_category, n_cat, "item_category", "categories")
        _check_range(self.category_benchmark, n_bench, "category_benchmark", "benchmarks")
        bad = np.flatnonzero((self.response != 0) & (self.response != 1))
        if bad.size:
            raise InputError(
                f"IRTData.response[{bad[0]}] = {self.response[bad[0]]} is not 0 or 1"
            )
        mismatch = np.flatnonzero(
            self.category_benchmark[self.item_category] != self.item_benchmark
        )
        if mismatch.size:
            j = int(mismatch[0])
            raise InputError(
                f"IRTData: item {self.item_ids[j]!r} has benchmark "
                f"{self.benchmark_ids[self.item_benchmark[j]]!r} but its category "
                f"{self.category_ids[self.item_category[j]]!r} belongs to another benchmark"
            )
        if self.item_embeddings is not None:
            emb = np.asarray(self.item_embeddings)
            if emb.ndim != 2 or emb.shape[0] != n_items:
                raise InputError(
                    f"IRTData.item_embeddings must have shape ({n_items}, d), got {emb.shape}"
                )
            if emb.dtype.kind != "f":
                raise TypeError(f"IRTData.item_embeddings must be floating, got {emb.dtype}")
            put(self, "item_embeddings", _ro(np.array(emb, dtype=np.float32)))
        self._model_vector("model_param_count", np.nan)
        self._model_vector("model_is_instruct", np.nan)
        self._model_vector("model_release_year", np.nan)
        org = ("",) * n_models if self.model_org is None else tuple(str(v) for v in self.model_org)
        if len(org) != n_models:
            raise InputError(f"IRTData.model_org has {len(org)} entries for {n_models} models")
        put(self, "model_org", org)
        if (self.test_model_idx is None) != (self.test_item_idx is None):
            raise InputError("IRTData.test_model_idx and test_item_idx must both be given or None")
        if self.test_model_idx is not None:
            put(self, "test_model_idx", _index_array(self.test_model_idx, "test_model_idx"))
            put(self, "test_item_idx", _index_array(self.test_item_idx, "test_item_idx"))
            if self.test_model_idx.shape != self.test_item_idx.shape:
                raise InputError("IRTData.test_model_idx and test_item_idx differ in length")
            _check_range(self.test_model_idx, n_models, "test_model_idx", "models")
            _check_range(self.test_item_idx, n_items, "test_item_idx", "items")
        put(self, "fingerprint", str(self.fingerprint))
        put(self, "source", str(self.source))

    def _model_vector(self, name: str, fill: float) -> None:
        """Normalise a float64 per-model field, filling ``fill`` when it is None."""
        n_models = len(self.model_ids)
        value = getattr(self, name)
        array = np.full(n_models, fill) if value is None else np.array(value, dtype=np.float64)
        if array.shape != (n_models,):
            raise InputError(f"IRTData.{name} must have shape ({n_models},), got {array.shape}")
        object.__setattr__(self, name, _ro(array))

    def __repr__(self) -> str:
        """Sizes only: the id tuples can hold tens of thousands of strings."""
        emb = "None" if self.item_embeddings is None else f"{self.item_embeddings.shape[1]}-d"
        n_test = "None" if self.test_model_idx is None else str(self.test_model_idx.shape[0])
        return (
            f"IRTData(n_models={self.n_models} ({self.n_train_models} train), "
            f"n_items={self.n_items} ({self.n_train_items} train), "
            f"n_benchmarks={self.n_benchmarks}, n_categories={self.n_categories}, "
            f"n_obs={self.n_obs}, n_test={n_test}, embeddings={emb}, source={self.source!r})"
        )

    @property
    def n_models(self) -> int:
        """Number of models, training and test-only."""
        return len(self.model_ids)

    @property
    def n_items(self) -> int:
        """Number of items, training and new test items."""
        return len(self.item_ids)

    @property
    def n_benchmarks(self) -> int:
        """Number of benchmarks."""
        return len(self.benchmark_ids)

    @property
    def n_categories(self) -> int:
        """Number of ``benchmark/category`` categories."""
        return len(self.category_ids)

    @property
    def n_obs(self) -> int:
        """Number of training responses."""
        return int(self.response.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test pairs (0 without a test folder)."""
        return 0 if self.test_model_idx is None else int(self.test_model_idx.shape[0])

    @cached_property
    def model_index(self) -> dict[str, int]:
        """Model id -> index."""
        return {m: i for i, m in enumerate(self.model_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        """Item id -> index."""
        return {j: i for i, j in enumerate(self.item_ids)}

    @cached_property
    def benchmark_index(self) -> dict[str, int]:
        """Benchmark name -> index."""
        return {b: i for i, b in enumerate(self.benchmark_ids)}

    @cached_property
    def category_index(self) -> dict[str, int]:
        """``benchmark/category`` -> index."""
        return {c: i for i, c in enumerate(self.category_ids)}

    def lookup_pairs(
        self, model_ids: Sequence[str], item_ids: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map (model id, item id) pairs to indices, e.g. for labeled pairs.

        Parameters
        ----------
        model_ids, item_ids : sequence of str, (n,)
            Pair ids, as returned by :func:`read_labeled_pairs`.

        Returns
        -------
        model_idx, item_idx : ndarray of int32, (n,)

        Raises
        ------
        ValueError
            When the lengths differ or an id is unknown (the first one is named).
        """
        models = pd.Index(self.model_ids).get_indexer(np.asarray(model_ids, dtype=object))
        items = pd.Index(self.item_ids).get_indexer(np.asarray(item_ids, dtype=object))
        if models.shape != items.shape:
            raise InputError(f"{models.shape[0]} model ids but {items.shape[0]} item ids")
        for idx, ids, what in ((models, model_ids, "model"), (items, item_ids, "item")):
            bad = np.flatnonzero(idx < 0)
            if bad.size:
                raise InputError(
                    f"pair {int(bad[0])}: unknown {what} id {ids[int(bad[0])]!r} "
                    f"({bad.size} unknown in all)"
                )
        return models.astype(np.int32), items.astype(np.int32)
