"""The flat posterior artifact: a NetCDF3 classic file readable with numpy + scipy only.

The competition container does not promise xarray, h5py or netCDF4, so the submission
bundle ships this file instead of the DataTree. Layout (see the project contract): every
posterior variable the predictive code uses, draws flattened into a leading ``sample`` dim
(float32); constant_data under its own names; ids as NUL-padded utf-8 char arrays.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.io import netcdf_file

import bayesirt
from bayesirt.posteriors.io import atomic_path, load, posterior_attrs

#: Value of the ``bayesirt_flat_schema`` global attribute.
FLAT_SCHEMA_VERSION = 1

#: Posterior variables copied into the flat file (others, e.g. raw non-centred sites, are not
#: needed to predict and would only grow the bundle).
FLAT_VARIABLES = (
    "ability",
    "difficulty",
    "log_discrimination",
    "mu_difficulty",
    "sigma_difficulty",
    "mu_log_discrimination",
    "sigma_log_discrimination",
    "ability_pop_loc",
    "ability_pop_scale",
    "category_offset",
    "embedding_coef",
    "guess",
)
_ID_DIMS = {"model": "model_id", "item": "item_id", "benchmark": "benchmark_id",
            "category": "category_id"}
# Classic NetCDF3 (version 1) addresses at most 2 GiB; bigger files need 64-bit offsets.
_CLASSIC_LIMIT = 2**31 - 2**24


def thin_indices(n_samples: int, max_draws: int | None, rng: np.random.Generator | None = None
                 ) -> np.ndarray:
    """Choose which flattened draws to keep.

    Parameters
    ----------
    n_samples : int
        Number of flattened draws S = chains * draws.
    max_draws : int or None
        Keep at most this many; None keeps all.
    rng : numpy.random.Generator, optional
        If given, a uniformly random subset (sorted); otherwise evenly spaced indices, so
        the same file always gives the same artifact.

    Returns
    -------
    ndarray of int64, shape (min(S, max_draws),)
        Increasing, distinct indices into the flattened draws.

    Raises
    ------
    ValueError
        If ``max_draws`` is not a positive integer.
    """
    if max_draws is None or max_draws >= n_samples:
        return np.arange(n_samples, dtype=np.int64)
    if int(max_draws) != max_draws or max_draws < 1:
        raise ValueError(f"max_draws must be a positive integer, got {max_draws!r}")
    if rng is not None:
        return np.sort(rng.choice(n_samples, size=int(max_draws), replace=False)).astype(np.int64)
    # Evenly spaced over the whole flattened run, so every chain contributes.
    return np.unique(np.round(np.linspace(0, n_samples - 1, int(max_draws))).astype(np.int64))


def _char_array(ids: list[str]) -> np.ndarray:
    """Encode ids as a (n, strlen) 'S1' array, utf-8, NUL padded."""
    encoded = [str(x).encode("utf-8") for x in ids]
    width = max([1, *(len(b) for b in encoded)])
    out = np.zeros((len(encoded), width), dtype="S1")
    for row, raw in enumerate(encoded):
        if raw:
            out[row, : len(raw)] = np.frombuffer(raw, dtype="S1")
    return out


def _check_dim(sizes: dict[str, int], dim: str, size: int, what: str) -> None:
    if dim in sizes and sizes[dim] != size:
        raise ValueError(
            f"flat file: dim {dim!r} would have size {sizes[dim]} and {size} ({what}); "
            "the NetCDF3 layout needs one size per dim"
        )
    sizes[dim] = size


def write_flat(
    tree_or_path: xr.DataTree | str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    max_draws: int | None = None,
    rng: np.random.Generator | None = None,
) -> Path:
    """Write the flat NetCDF3 artifact of a posterior, atomically.

    Parameters
    ----------
    tree_or_path : xarray.DataTree or path-like
        A posterior tree, or the path of a file written by ``bayesirt.posteriors.save``.
    out_path : str or path-like
        Destination file.
    max_draws : int, optional
        Keep at most this many of the S = chains * draws flattened draws (evenly spaced
        unless ``rng`` is given).
    rng : numpy.random.Generator, optional
        Draw a random subset instead of evenly spaced draws.

    Returns
    -------
    pathlib.Path
        ``out_path``.

    Raises
    ------
    ValueError
        If the posterior has none of the contract variables, ``max_draws`` is invalid, or
        two variables disagree on a dim's size.
    """
    tree = load(tree_or_path) if not isinstance(tree_or_path, xr.DataTree) else tree_or_path
    post = tree["posterior"].to_dataset()
    names = [n for n in FLAT_VARIABLES if n in post.data_vars]
    if "ability" not in names or "difficulty" not in names:
        raise ValueError(
            f"posterior lacks the contract variables ability/difficulty (has {list(post)})"
        )
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    keep = thin_indices(n_chain * n_draw, max_draws, rng)
    sizes: dict[str, int] = {"sample": len(keep)}
    arrays: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    for name in names:
        da = post[name].transpose("chain", "draw", ...)
        values = np.asarray(da.values).reshape((n_chain * n_draw, *da.shape[2:]))[keep]
        dims = ("sample", *da.dims[2:])
        for dim, size in zip(dims[1:], values.shape[1:], strict=True):
            _check_dim(sizes, dim, size, f"posterior/{name}")
        arrays[name] = (dims, np.ascontiguousarray(values, dtype=np.float32))
    if "constant_data" in tree.children:
        const = tree["constant_data"].to_dataset()
        for name, da in const.data_vars.items():
            values = np.asarray(da.values)
            for dim, size in zip(da.dims, values.shape, strict=True):
                _check_dim(sizes, dim, size, f"constant_data/{name}")
            dtype = np.int32 if values.dtype.kind in "biu" else np.float32
            arrays[name] = (tuple(da.dims), np.ascontiguousarray(values, dtype=dtype))
    id_arrays: dict[str, tuple[tuple[str, str], np.ndarray]] = {}
    for dim, var in _ID_DIMS.items():
        ids = None
        for ds in (post, tree["constant_data"].to_dataset() if "constant_data" in tree.children
                   else xr.Dataset()):
            if dim in ds.coords:
                ids = [str(x) for x in ds.coords[dim].values]
                break
        if ids is None:
            continue
        _check_dim(sizes, dim, len(ids), f"{dim} ids")
        chars = _char_array(ids)
        id_arrays[var] = ((dim, f"{dim}_strlen"), chars)
        sizes[f"{dim}_strlen"] = chars.shape[1]

    # NetCDF3 reads a zero-length dim as the record dim, so empty variables are left out.
    empty = {d for d, n in sizes.items() if n == 0}
    arrays = {k: v for k, v in arrays.items() if not empty & set(v[0])}
    id_arrays = {k: v for k, v in id_arrays.items() if not empty & set(v[0])}
    sizes = {d: n for d, n in sizes.items() if n > 0}
    attrs = posterior_attrs(tree)
    total = sum(a.nbytes for _, a in arrays.values()) + sum(a.nbytes for _, a in id_arrays.values())
    version = 1 if total < _CLASSIC_LIMIT else 2
    with atomic_path(out_path) as tmp:
        nc = netcdf_file(tmp, mode="w", version=version)
        try:
            nc.bayesirt_flat_schema = FLAT_SCHEMA_VERSION
            nc.model_name = str(attrs.get("model_name", ""))
            nc.config = json.dumps(attrs.get("config", {}), sort_keys=True, default=str)
            nc.fingerprint = str(attrs.get("fingerprint", ""))
            nc.bayesirt_version = bayesirt.__version__
            nc.created_at = datetime.now(UTC).isoformat()
            nc.n_chains = int(n_chain)
            nc.n_draws = int(n_draw)
            for dim, size in sizes.items():
                nc.createDimension(dim, size)
            for name, (dims, values) in arrays.items():
                var = nc.createVariable(name, values.dtype, dims)
                if values.size:
                    var[...] = values
            for name, (dims, chars) in id_arrays.items():
                var = nc.createVariable(name, "c", dims)
                if chars.size:
                    var[...] = chars
        finally:
            nc.close()
    return Path(out_path)
