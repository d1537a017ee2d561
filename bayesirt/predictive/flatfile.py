"""The flat posterior artifact: a NetCDF3 classic file that scipy alone reads and writes.

The competition container promises numpy and scipy but not xarray, h5py or netCDF4, so the
submission ships the draws in this layout instead of the DataTree:

* every draw variable of :data:`~.draws.DRAW_VARS` that the posterior has, float32, dims
  ``("sample", *trailing dims)``: the chains flattened in chain order;
* the constants of :data:`~.draws.CONST_VARS` (int32 index maps, float32 projection);
* ids as NUL-padded utf-8 char arrays ``model_id``, ``item_id``, ``benchmark_id``,
  ``category_id`` with dims ``(<dim>, <dim>_strlen)``;
* global attributes: ``bayesirt_flat_schema`` (:data:`FLAT_SCHEMA`) and the provenance
  ``model_name``, ``config`` (JSON), ``fingerprint``, ``bayesirt_version``, ``created_at``,
  ``n_chains``, ``n_draws`` (chains and draws per chain of the fit the draws come from).

NetCDF3 reads a zero-length dim as the record dim, so variables over an empty dim (e.g. no
categories) are left out; :func:`load_flat` reads their absence as "none".
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from ..errors import InputError
from .draws import CONST_VARS, DRAW_VARS, PosteriorDraws

__all__ = ["FLAT_SCHEMA", "load_flat", "save_flat"]

#: Value of the ``bayesirt_flat_schema`` global attribute.
FLAT_SCHEMA = 1
#: Provenance attributes written into every flat file (``""`` when unknown).
PROVENANCE_ATTRS = ("model_name", "config", "fingerprint", "bayesirt_version", "created_at",
                    "n_chains", "n_draws")
_ID_VARS = {"model": "model_id", "item": "item_id", "benchmark": "benchmark_id",
            "category": "category_id", "org": "org_id"}
_INDEX_CONSTS = ("item_benchmark", "item_category", "category_benchmark")
# Classic NetCDF3 (version 1) addresses at most 2 GiB; bigger files need 64-bit offsets.
_CLASSIC_LIMIT = 2**31 - 2**24


def _char_array(ids: Sequence[str]) -> np.ndarray:
    raw = [s.encode("utf-8") for s in ids]
    width = max([1] + [len(r) for r in raw])
    out = np.zeros((len(raw), width), dtype="S1")
    for i, r in enumerate(raw):
        if r:
            out[i, : len(r)] = np.frombuffer(r, dtype="S1")
    return out


def _decode_chars(arr: np.ndarray) -> tuple[str, ...]:
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr[None, :] if arr.size else arr.reshape(0, 1)
    return tuple(b"".join(row.tolist()).rstrip(b"\x00").decode("utf-8") for row in arr)


def _attr_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "S":
            return b"".join(value.reshape(-1).tolist()).decode("utf-8")
        return str(value.tolist()[0] if value.size == 1 else value.tolist())
    return str(value)


def _provenance(draws: PosteriorDraws) -> dict[str, str | int]:
    """Return the global attributes of the file, from ``draws.attrs`` (blank: unknown)."""
    attrs = draws.attrs
    out: dict[str, str | int] = {}
    for key in PROVENANCE_ATTRS:
        value = attrs.get(key, "")
        if key == "config" and not isinstance(value, str):
            value = json.dumps(value, sort_keys=True, default=str)
        elif key == "created_at" and not value:
            # timezone.utc, not datetime.UTC: the runtime runs on Python 3.10 too.
            value = datetime.now(timezone.utc).isoformat()  # noqa: UP017
        elif key in ("n_chains", "n_draws"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                # Draws not from a fit: one chain of S draws.
                value = 1 if key == "n_chains" else draws.n_draws
        out[key] = value if isinstance(value, int) else str(value)
    return out


def save_flat(draws: PosteriorDraws, path: str | os.PathLike[str]) -> None:
    """Write draws as the flat NetCDF3 artifact (scipy only), atomically.

    Parameters
    ----------
    draws : PosteriorDraws
        The draws; ``draws.attrs`` supplies the provenance attributes
        (:data:`PROVENANCE_ATTRS`; ``config`` JSON-encoded when not a string,
        ``created_at`` now when absent).
    path : str or path-like
        Output file; replaced only once completely written.

    Notes
    -----
    Draw variables are written as float32 and index constants as int32, so draws read back
    with :func:`load_flat` equal ``draws`` exactly when they came from float32 values (as
    ``bayesirt.posteriors.flat_arrays`` gives).
    """
    from scipy.io import netcdf_file

    sizes = {
        "sample": draws.n_draws,
        "model": len(draws.model_ids),
        "item": len(draws.item_ids),
        "benchmark": len(draws.benchmark_ids),
        "category": len(draws.category_ids),
        "org": len(draws.org_ids),
    }
    if draws.metadata_coef is not None:
        sizes["metadata_feature"] = draws.metadata_coef.shape[1]
    if draws.embedding_coef is not None:
        sizes["component"] = draws.embedding_coef.shape[2]
        sizes["embedding_dim"] = draws.embedding_pca_mean.shape[0]  # type: ignore[union-attr]
    variables: dict[str, tuple[str, tuple[str, ...], np.ndarray]] = {}
    for dim, var in _ID_VARS.items():
        chars = _char_array(getattr(draws, f"{dim}_ids"))
        sizes[f"{dim}_strlen"] = chars.shape[1]
        variables[var] = ("c", (dim, f"{dim}_strlen"), chars)
    for name, dims in DRAW_VARS.items():
        value = getattr(draws, name)
        if value is not None:
            variables[name] = ("f4", ("sample", *dims), value.astype(np.float32))
    for name, dims in CONST_VARS.items():
        value = getattr(draws, name)
        if value is not None:
            kind = "i4" if name in _INDEX_CONSTS else "f4"
            variables[name] = (kind, dims, value.astype(kind))
    # NetCDF3 reads a zero-length dim as the record dim: leave empty variables out.
    empty = {d for d, n in sizes.items() if n == 0}
    variables = {k: v for k, v in variables.items() if not empty & set(v[1])}
    used = {d for _, dims, _ in variables.values() for d in dims}
    total = sum(v[2].nbytes for v in variables.values())
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with netcdf_file(tmp, "w", version=1 if total < _CLASSIC_LIMIT else 2) as f:
            for dim, size in sizes.items():
                if dim in used:
                    f.createDimension(dim, size)
            for name, (kind, dims, value) in variables.items():
                var = f.createVariable(name, kind, dims)
                if value.size:
                    var[...] = value
            f.bayesirt_flat_schema = np.int32(FLAT_SCHEMA)
            for key, value in _provenance(draws).items():
                setattr(f, key, value)
        os.replace(tmp, path)  # a half-written artifact never appears under ``path``
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_flat(path: str | os.PathLike[str]) -> PosteriorDraws:
    """Read the flat NetCDF3 artifact written by :func:`save_flat`.

    Parameters
    ----------
    path : str or path-like
        The ``.nc`` file (NetCDF3 classic or 64-bit offset).

    Returns
    -------
    PosteriorDraws
        Arrays as float64 (draw variables) and int64 (indices); ``attrs`` holds the global
        attributes as strings (``config`` parsed from JSON when possible).

    Raises
    ------
    InputError
        If the file is not a flat artifact (missing or different ``bayesirt_flat_schema``),
        lacks a required variable, or holds inconsistent arrays.
    FileNotFoundError
        If ``path`` does not exist.
    """
    from scipy.io import netcdf_file

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"posterior file not found: {path}")
    try:
        f = netcdf_file(path, "r", mmap=False)
    except Exception as exc:  # scipy raises TypeError/ValueError for non-NetCDF3 input
        raise InputError(
            f"{path} is not a NetCDF3 classic file ({exc}); the flat artifact is written by "
            "bayesirt.predictive.save_flat"
        ) from exc
    with f:
        schema = getattr(f, "_attributes", {}).get("bayesirt_flat_schema")
        if schema is None:
            raise InputError(
                f"{path} has no 'bayesirt_flat_schema' attribute: not a flat artifact")
        schema = int(np.asarray(schema).reshape(-1)[0])
        if schema != FLAT_SCHEMA:
            raise InputError(
                f"{path} has bayesirt_flat_schema={schema}, expected {FLAT_SCHEMA}")
        variables = f.variables
        ids = {}
        for dim, var in _ID_VARS.items():
            if var in variables:
                ids[dim] = _decode_chars(variables[var].data.copy())
            elif dim in ("category", "org"):
                ids[dim] = ()
            else:
                raise InputError(f"{path} lacks the id variable {var!r}")
        arrays: dict[str, Any] = {}
        for name in list(DRAW_VARS) + list(CONST_VARS):
            if name in variables:
                arrays[name] = np.array(variables[name].data, copy=True)
        attrs: dict[str, Any] = {k: _attr_str(v) for k, v in f._attributes.items()}
    if "config" in attrs:
        try:
            attrs["config"] = json.loads(attrs["config"])
        except ValueError:
            pass
    try:
        return PosteriorDraws.from_arrays(
            model_ids=ids["model"],
            item_ids=ids["item"],
            benchmark_ids=ids["benchmark"],
            category_ids=ids["category"],
            org_ids=ids["org"],
            attrs=attrs,
            **arrays,
        )
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from exc
