"""A posterior DataTree as the plain arrays the predictive runtime takes, in memory.

:func:`flat_arrays` reads the variables the runtime uses from a posterior written by
:func:`bayesirt.posteriors.save`, flattens the chains into one leading draw axis (chain
order), thins them, and returns numpy arrays keyed as the arguments of
``bayesirt.predictive.PosteriorDraws.from_arrays``. The values are float32 (index maps
int32), exactly what the flat NetCDF3 artifact stores, so draws built in memory predict
what the same draws read back from ``bayesirt.predictive.save_flat``'s file predict.

Data flow one way: this module does not import ``bayesirt.predictive``; callers do
``PosteriorDraws.from_arrays(**flat_arrays(path))`` and, when a file is needed (the
submission bundle), ``save_flat``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import numpy as np
import xarray as xr

import bayesirt
from bayesirt.errors import InputError
from bayesirt.posteriors.io import load, posterior_attrs

#: Posterior variables the runtime reads (others, e.g. raw non-centred sites, are not needed
#: to predict and would only grow the bundle).
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
    "general_ability",
    "loading",
    "metadata_coef",
    "org_effect",
    "ability_residual_scale",
    "loading_uniqueness_power",
    "outlier_fraction",
    # The population of benchmarks (``bayesirt.models.population.POPULATION_PRIORS``; listed here
    # so that reading a posterior does not import JAX).
    *(f"benchmark_pop_{key}" for key in (
        "difficulty_loc", "difficulty_scale",
        "log_sigma_difficulty_loc", "log_sigma_difficulty_scale",
        "log_discrimination_loc", "log_discrimination_scale",
        "log_sigma_log_discrimination_loc", "log_sigma_log_discrimination_scale",
        "logit_loading_loc", "logit_loading_scale",
    )),
)
#: Contract name -> the posterior variable it is read from, where the two differ.
_POSTERIOR_NAME = {"general_ability": "theta", "loading": "rho"}
#: ``constant_data`` variables the runtime reads (index maps, embedding projection).
FLAT_CONSTANTS = (
    "item_benchmark",
    "item_category",
    "category_benchmark",
    "embedding_pca_mean",
    "embedding_pca_components",
    "embedding_pca_scale",
    "metadata_center",
    "metadata_scale",
)
_ID_DIMS = ("model", "item", "benchmark", "category", "org")


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
        the same file always gives the same draws.

    Returns
    -------
    ndarray of int64, shape (min(S, max_draws),)
        Increasing, distinct indices into the flattened draws.

    Raises
    ------
    InputError
        If ``max_draws`` is not a positive integer.
    """
    if max_draws is None or max_draws >= n_samples:
        return np.arange(n_samples, dtype=np.int64)
    if int(max_draws) != max_draws or max_draws < 1:
        raise InputError(f"max_draws must be a positive integer, got {max_draws!r}")
    if rng is not None:
        return np.sort(rng.choice(n_samples, size=int(max_draws), replace=False)).astype(np.int64)
    # Evenly spaced over the whole flattened run, so every chain contributes.
    return np.unique(np.round(np.linspace(0, n_samples - 1, int(max_draws))).astype(np.int64))


def _check_dim(sizes: dict[str, int], dim: str, size: int, what: str) -> None:
    if dim in sizes and sizes[dim] != size:
        raise InputError(
            f"posterior: dim {dim!r} has size {sizes[dim]} in one variable and {size} in "
            f"{what}"
        )
    sizes[dim] = size


def flat_arrays(
    tree_or_path: xr.DataTree | str | os.PathLike,
    max_draws: int | None = None,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """Convert a posterior into the runtime's plain arrays, in memory.

    Parameters
    ----------
    tree_or_path : xarray.DataTree or path-like
        A posterior tree, or the path of a file written by ``bayesirt.posteriors.save``
        (opened and closed here).
    max_draws : int, optional
        Keep at most this many of the S = chains * draws flattened draws (evenly spaced
        unless ``rng`` is given, see :func:`thin_indices`).
    rng : numpy.random.Generator, optional
        Draw a random subset instead of evenly spaced draws.

    Returns
    -------
    dict
        ``model_ids``, ``item_ids``, ``benchmark_ids``, ``category_ids`` (lists of str;
        categories empty when the posterior has none), ``attrs`` (``model_name``,
        ``config`` dict, ``fingerprint``, ``bayesirt_version``, ``created_at``,
        ``n_chains``, ``n_draws`` of the fit) and every variable of :data:`FLAT_VARIABLES`
        the posterior has, float32 of shape ``(S', *trailing dims)``, plus the
        :data:`FLAT_CONSTANTS` it has (int32 index maps, float32 projection). Variables
        over an empty dim are left out, as the flat file leaves them out.

    Raises
    ------
    InputError
        If the posterior lacks the contract variables ability/difficulty or the model,
        item or benchmark coordinates, ``max_draws`` is invalid, or two variables disagree
        on a dim's size.
    """
    opened = not isinstance(tree_or_path, xr.DataTree)
    tree = load(tree_or_path) if opened else tree_or_path
    try:
        return _flat_arrays(tree, max_draws, rng)
    finally:
        if opened:
            tree.close()


def _flat_arrays(tree: xr.DataTree, max_draws: int | None,
                 rng: np.random.Generator | None) -> dict[str, Any]:
    post = tree["posterior"].to_dataset()
    const = (tree["constant_data"].to_dataset() if "constant_data" in tree.children
             else xr.Dataset())
    names = [n for n in FLAT_VARIABLES if _POSTERIOR_NAME.get(n, n) in post.data_vars]
    if "ability" not in names or "difficulty" not in names:
        raise InputError(
            f"posterior lacks the contract variables ability/difficulty (has {list(post)})"
        )
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    keep = thin_indices(n_chain * n_draw, max_draws, rng)
    sizes: dict[str, int] = {"sample": len(keep)}
    arrays: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    for name in names:
        da = post[_POSTERIOR_NAME.get(name, name)].transpose("chain", "draw", ...)
        values = np.asarray(da.values).reshape((n_chain * n_draw, *da.shape[2:]))[keep]
        dims = ("sample", *da.dims[2:])
        for dim, size in zip(dims[1:], values.shape[1:], strict=True):
            _check_dim(sizes, dim, size, f"posterior/{name}")
        arrays[name] = (dims, np.ascontiguousarray(values, dtype=np.float32))
    for name in FLAT_CONSTANTS:
        if name not in const.data_vars:
            continue
        da = const[name]
        values = np.asarray(da.values)
        for dim, size in zip(da.dims, values.shape, strict=True):
            _check_dim(sizes, dim, size, f"constant_data/{name}")
        dtype = np.int32 if values.dtype.kind in "biu" else np.float32
        arrays[name] = (tuple(da.dims), np.ascontiguousarray(values, dtype=dtype))
    ids: dict[str, list[str]] = {}
    for dim in _ID_DIMS:
        for ds in (post, const):
            if dim in ds.coords:
                ids[dim] = [str(x) for x in ds.coords[dim].values]
                _check_dim(sizes, dim, len(ids[dim]), f"{dim} ids")
                break
    # As in the flat file (NetCDF3 cannot hold a zero-length dim): an empty dim is absent.
    empty = {d for d, n in sizes.items() if n == 0}
    missing = [d for d in _ID_DIMS[:3] if d not in ids or d in empty]
    if missing:
        raise InputError(f"posterior lacks (non-empty) coordinates for dim(s) {missing}")
    attrs = posterior_attrs(tree)
    out: dict[str, Any] = {
        "model_ids": ids["model"],
        "item_ids": ids["item"],
        "benchmark_ids": ids["benchmark"],
        "category_ids": [] if "category" in empty else ids.get("category", []),
        "org_ids": [] if "org" in empty else ids.get("org", []),
        "attrs": {
            "model_name": str(attrs.get("model_name", "")),
            "config": attrs.get("config", {}),
            "fingerprint": str(attrs.get("fingerprint", "")),
            "bayesirt_version": bayesirt.__version__,
            "created_at": datetime.now(UTC).isoformat(),
            "n_chains": int(n_chain),
            "n_draws": int(n_draw),
        },
    }
    out.update({k: v for k, (dims, v) in arrays.items() if not empty & set(dims)})
    return out
