"""Validation helpers of the posterior-draws container (ids, float arrays, indices)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError


def _metadata_consts(arrays: Mapping[str, Any], out: Mapping[str, Any],
                     sizes: Mapping[str, int]) -> dict[str, np.ndarray | None]:
    """Validate the metadata encoding constants against ``metadata_coef``."""
    if out["metadata_coef"] is None:
        return {"metadata_center": None, "metadata_scale": None}
    consts = {}
    for name in ("metadata_center", "metadata_scale"):
        if arrays.get(name) is None:
            raise InputError(f"metadata_coef needs {name}")
        value = _as_float(arrays[name], name, ndim=1)
        if value.shape[0] != sizes["metadata_feature"]:
            raise InputError(f"{name} has {value.shape[0]} entries for "
                             f"{sizes['metadata_feature']} metadata features")
        consts[name] = value
    if np.any(consts["metadata_scale"] <= 0):
        raise InputError("metadata_scale must be > 0")
    if out["ability_residual_scale"] is None:
        raise InputError("metadata_coef needs ability_residual_scale")
    return consts


def _as_ids(ids: Sequence[str], name: str) -> tuple[str, ...]:
    out = tuple(str(i) for i in ids)
    if len(set(out)) != len(out):
        seen: set[str] = set()
        dup = next(i for i in out if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise InputError(f"{name} has duplicate id {dup!r}")
    return out


def _as_float(value: Any, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dims, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"{name} has a non-finite value at index {tuple(int(b) for b in bad)}")
    return arr


def _as_index(value: Any, name: str, n: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise InputError(f"{name} has values outside [0, {n}): min {arr.min()}, max {arr.max()}")
    return arr

