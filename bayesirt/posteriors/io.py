"""Write and read one posterior as an ArviZ 1.x DataTree in a netCDF4/HDF5 file.

The file holds the groups ``posterior``, ``sample_stats``, ``observed_data``,
``constant_data`` and, when the fit kept it, ``log_likelihood``. Dimensions are named after
the model's plates (``model``, ``item``, ``benchmark``, ``category``, ``component``,
``obs``) and carry the real ids as coordinates. Provenance sits in the root attributes,
structured values JSON-encoded, so reading needs only xarray + numpy (never pickle).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

import bayesirt
from bayesirt.errors import InputError

if TYPE_CHECKING:  # annotations only: reading a posterior must not start JAX
    from bayesirt.inference.result import FitResult

#: Version of the on-disk layout; ``load`` refuses files written by a newer bayesirt.
SCHEMA_VERSION = 1

#: Root attribute that marks a bayesirt posterior file.
SCHEMA_ATTR = "bayesirt_schema_version"

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_GROUPS = ("posterior", "sample_stats", "observed_data", "constant_data", "log_likelihood")
# Entity dims whose training ids come first in the data's id lists, so a longer id list
# (train + new) may be cut to the fitted size; any other mismatch is an error.
_PREFIX_DIMS = ("model", "item")
# Target size of one compressed log-likelihood chunk: big enough for zlib to be efficient,
# small enough that streaming over observations never decompresses much more than it uses.
_LL_CHUNK_BYTES = 4 * 1024 * 1024


def available_engines() -> list[str]:
    """Return the NetCDF engines that can write and read the posterior file here.

    Returns
    -------
    list of str
        A subset of ``["netcdf4", "h5netcdf"]``, in order of preference.
    """
    engines = []
    # h5netcdf is only a front end: without h5py it can neither read nor write.
    # Availability is checked WITHOUT importing: netCDF4 and h5py each bundle their own
    # libhdf5, and with both loaded in one process opening a file segfaulted (seen here:
    # netCDF4 1.7 + h5py 3.x wheels, `pipeline.predict` in a plain script). Only the engine
    # xarray is asked to use gets imported.
    for engine, modules in (("netcdf4", ("netCDF4",)), ("h5netcdf", ("h5netcdf", "h5py"))):
        if all(importlib.util.find_spec(module) is not None for module in modules):
            engines.append(engine)
    return engines


def _chmod_default(path: Path) -> None:
    """Give a mkstemp file (created 0600) the permissions a plain open() would have."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _package_version(name: str) -> str:
    # Versions come from installed metadata so that this module never imports JAX.
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _attr_value(value: Any) -> Any:
    """Turn a provenance value into something every NetCDF engine can store as an attr."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | float | str | np.integer | np.floating):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _first(*candidates: Any) -> Any:
    for value in candidates:
        if value is not None and value != "":
            return value
    return None


def make_provenance_attrs(fit: FitResult) -> dict[str, Any]:
    """Build the root attributes of a posterior file from a fit.

    Parameters
    ----------
    fit : FitResult
        The fit whose config and provenance are recorded.

    Returns
    -------
    dict
        Attribute name -> NetCDF-storable value (str, int, float); ``config`` and
        ``provenance`` are JSON strings holding the full dicts.
    """
    cfg = dict(fit.config)
    prov = dict(fit.provenance)
    attrs = {
        SCHEMA_ATTR: SCHEMA_VERSION,
        "bayesirt_version": _first(prov.get("bayesirt_version"), bayesirt.__version__),
        "model_name": fit.model_name,
        "config": json.dumps(cfg, sort_keys=True, default=str),
        "provenance": json.dumps(prov, sort_keys=True, default=str),
        "seed": _first(cfg.get("seed"), prov.get("seed")),
        "device": _first(prov.get("device"), cfg.get("device")),
        "chains": fit.n_chains,
        "warmup": _first(cfg.get("warmup"), cfg.get("num_warmup"), prov.get("warmup")),
        "draws": fit.n_draws,
        "max_tree_depth": int(fit.max_tree_depth),
        "jax_version": _first(prov.get("jax_version"), _package_version("jax")),
        "numpyro_version": _first(prov.get("numpyro_version"), _package_version("numpyro")),
        "arviz_base_version": _package_version("arviz-base"),
        "created_at": _first(prov.get("created_at"), datetime.now(UTC).isoformat()),
        "fingerprint": _first(prov.get("fingerprint"), cfg.get("fingerprint")),
        "data_source": _first(prov.get("source"), prov.get("data_source"), cfg.get("data")),
        "inference_library": "numpyro",
        "creation_library": "bayesirt",
    }
    return {key: _attr_value(value) for key, value in attrs.items()}


def _coords_for(
    dims: tuple[str, ...], shape: tuple[int, ...], coords: dict[str, Any], where: str
) -> dict[str, np.ndarray]:
    """Return id coordinates for the named dims of one array, checked against its shape."""
    out: dict[str, np.ndarray] = {}
    for dim, size in zip(dims, shape, strict=True):
        if dim not in coords or coords[dim] is None:
            continue
        ids = np.asarray([str(x) for x in coords[dim]], dtype=object)
        if len(ids) == size:
            out[dim] = ids
        elif len(ids) > size and dim in _PREFIX_DIMS:
            # Training models/items come first in IRTData's id lists (the contract), so the
            # fitted dim is the prefix; new test items are never part of the posterior.
            out[dim] = ids[:size]
        else:
            raise ValueError(
                f"{where}: dim {dim!r} has size {size} but coords[{dim!r}] lists "
                f"{len(ids)} ids"
            )
    return out


def _dataset(
    arrays: dict[str, np.ndarray],
    dims: dict[str, tuple[str, ...]],
    coords: dict[str, Any],
    group: str,
    leading: tuple[str, ...],
) -> xr.Dataset:
    """Label the arrays of one group; ``leading`` dims (chain, draw) come before the site dims."""
    data_vars = {}
    all_coords: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"{group}/{name}: object arrays cannot be stored (got {arr.dtype})")
        if len(arr.shape) < len(leading):
            raise ValueError(
                f"{group}/{name}: expected leading dims {leading}, got shape {arr.shape}"
            )
        site_shape = arr.shape[len(leading) :]
        site_dims = tuple(dims.get(name, ()))
        if not site_dims and site_shape:
            site_dims = tuple(f"{name}_dim_{i}" for i in range(len(site_shape)))
        if len(site_dims) != len(site_shape):
            raise ValueError(
                f"{group}/{name}: dims {site_dims} do not match trailing shape {site_shape}"
            )
        var_coords = _coords_for(site_dims, site_shape, coords, f"{group}/{name}")
        for dim, ids in var_coords.items():
            if dim in all_coords and not np.array_equal(all_coords[dim], ids):
                raise ValueError(f"{group}/{name}: dim {dim!r} has conflicting sizes or ids")
            all_coords[dim] = ids
        data_vars[name] = (leading + site_dims, arr)
    if leading:
        sizes = {np.asarray(v).shape[: len(leading)] for v in arrays.values()}
        if len(sizes) > 1:
            raise ValueError(f"{group}: arrays disagree on (chain, draw) sizes: {sorted(sizes)}")
        if sizes:
            (lead_shape,) = sizes
            for dim, size in zip(leading, lead_shape, strict=True):
                all_coords[dim] = np.arange(size)
    return xr.Dataset(data_vars, coords=all_coords)


def to_datatree(fit: FitResult) -> xr.DataTree:
    """Turn a fit into an ArviZ-style DataTree, in memory (no file written).

    Parameters
    ----------
    fit : FitResult
        The sampler output; arrays ``(chain, draw, ...)``.

    Returns
    -------
    xarray.DataTree
        Groups ``posterior``, ``sample_stats``, ``observed_data``, ``constant_data`` and
        ``log_likelihood`` (only when ``fit.log_likelihood`` is not None); provenance in the
        root attrs.

    Raises
    ------
    ValueError
        If dims and shapes disagree, or an id list does not match its dim's size.
    TypeError
        If an array has dtype object.
    """
    if not fit.posterior:
        raise ValueError("fit.posterior is empty: nothing to save")
    if not fit.sample_stats:
        raise ValueError("fit.sample_stats is empty: chains/draws cannot be labelled")
    attrs = make_provenance_attrs(fit)
    group_attrs = {
        "created_at": attrs["created_at"],
        "creation_library": "bayesirt",
        "creation_library_version": attrs["bayesirt_version"],
        "inference_library": "numpyro",
        "inference_library_version": attrs["numpyro_version"],
    }
    lead = ("chain", "draw")
    groups: dict[str, xr.Dataset] = {
        "posterior": _dataset(fit.posterior, fit.dims, fit.coords, "posterior", lead),
        "sample_stats": _dataset(fit.sample_stats, {}, fit.coords, "sample_stats", lead),
    }
    obs_dims = {name: ("obs",) for name, v in fit.observed.items() if np.ndim(v) == 1}
    groups["observed_data"] = _dataset(fit.observed, obs_dims, fit.coords, "observed_data", ())
    if fit.log_likelihood is not None:
        ll = np.asarray(fit.log_likelihood)
        if ll.ndim != 3:
            raise ValueError(f"log_likelihood must be (chain, draw, obs), got shape {ll.shape}")
        # ArviZ pairs log-likelihood and observed variables by name.
        ll_name = next(iter(fit.observed), "response") if len(fit.observed) == 1 else "response"
        groups["log_likelihood"] = _dataset(
            {ll_name: ll}, {ll_name: ("obs",)}, fit.coords, "log_likelihood", lead
        )
    groups["constant_data"] = _dataset(
        fit.constant_data, fit.constant_dims, fit.coords, "constant_data", ()
    )
    for ds in groups.values():
        ds.attrs.update(group_attrs)
    tree = xr.DataTree.from_dict({f"/{name}": ds for name, ds in groups.items()})
    tree.attrs.update(attrs)
    return tree


def _encoding(tree: xr.DataTree, compress: bool) -> dict[str, dict[str, dict[str, Any]]]:
    """Per-variable compression and chunking; coordinates (strings) are left alone."""
    encoding: dict[str, dict[str, dict[str, Any]]] = {}
    for name in _GROUPS:
        if name not in tree.children:
            continue
        ds = tree[name].to_dataset()
        group_enc: dict[str, dict[str, Any]] = {}
        for var_name, var in ds.data_vars.items():
            enc: dict[str, Any] = {}
            # Small arrays are stored contiguous: HDF5 chunk indexes would outweigh the
            # bytes zlib saves on them.
            if compress and var.nbytes >= 65536 and var.dtype.kind in "biuf":
                # shuffle groups the bytes of floats so zlib finds the shared exponents.
                enc.update(zlib=True, complevel=4, shuffle=True)
            if name == "log_likelihood":
                enc["dtype"] = "float32"
                if var.size > 0:
                    # Chunks hold all draws of a run of observations: LOO streams over
                    # observations, so each chunk is decompressed exactly once.
                    n_chain, n_draw, n_obs = var.shape
                    per_obs = max(1, n_chain * n_draw * 4)
                    width = int(min(n_obs, max(1, _LL_CHUNK_BYTES // per_obs)))
                    enc["chunksizes"] = (n_chain, n_draw, width)
            if enc:
                group_enc[var_name] = enc
        encoding[f"/{name}"] = group_enc
    return encoding


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it into place.

    A crash, a full disk or an exception inside the block leaves nothing under ``path`` (and an
    existing file there untouched): the temporary file is removed and the error re-raised.

    Parameters
    ----------
    path : path-like
        The final file name.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    _chmod_default(tmp)
    try:
        yield tmp
        # fsync before the rename: otherwise a crash can leave the new name pointing at a
        # file whose data never reached the disk.
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save(
    fit: FitResult | xr.DataTree,
    path: str | os.PathLike,
    *,
    compress: bool = True,
    engine: str | None = None,
) -> Path:
    """Write a posterior file atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    fit : FitResult or xarray.DataTree
        The fit, or a tree already built by :func:`to_datatree`.
    path : str or path-like
        Final file name (conventionally ``*.nc``); its folder is created if missing.
    compress : bool, default True
        zlib (level 4, byte shuffle) on every numeric data variable.
    engine : {"h5netcdf", "netcdf4"}, optional
        NetCDF engine; default the first of :func:`available_engines`.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If ``engine`` is unknown or not installed, or the fit is malformed
        (see :func:`to_datatree`).
    OSError
        If writing fails (full disk, permissions); no file is left under ``path`` then.
    """
    engines = available_engines()
    engine = engine or (engines[0] if engines else None)
    if engine not in engines:
        raise InputError(f"engine {engine!r} is not available; installed: {engines}")
    tree = fit if isinstance(fit, xr.DataTree) else to_datatree(fit)
    if SCHEMA_ATTR not in tree.attrs:
        raise InputError("the DataTree has no bayesirt provenance attrs: build it with to_datatree")
    with atomic_path(path) as tmp:
        tree.to_netcdf(tmp, mode="w", engine=engine, encoding=_encoding(tree, compress))
    return Path(path)


def load(
    path: str | os.PathLike, *, engine: str | None = None, lazy_log_likelihood: bool = True
) -> xr.DataTree:
    """Read a posterior file written by :func:`save`, refusing anything else.

    Parameters
    ----------
    path : str or path-like
        The ``.nc`` file.
    engine : {"h5netcdf", "netcdf4"}, optional
        NetCDF engine; default the first of :func:`available_engines`.
    lazy_log_likelihood : bool, default True
        Leave the (possibly multi-GB) ``log_likelihood`` group on disk until used; all
        other groups are read into memory.

    Returns
    -------
    xarray.DataTree
        The tree with the groups and root attrs described in :func:`to_datatree`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not netCDF4/HDF5, is truncated or corrupt, is not a bayesirt
        posterior, or was written with a newer schema version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"posterior file not found: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic[:3] == b"CDF":
        raise InputError(
            f"{path}: is a NetCDF3 classic file (the flat submission artifact?), not a "
            "bayesirt posterior DataTree; read flat files with bayesirt.predictive.load_flat"
        )
    if magic != _HDF5_MAGIC:
        raise InputError(f"{path}: not a netCDF4/HDF5 file (first bytes {magic!r})")
    engines = available_engines()
    engine = engine or (engines[0] if engines else None)
    if engine not in engines:
        raise InputError(f"engine {engine!r} is not available; installed: {engines}")
    try:
        tree = xr.open_datatree(path, engine=engine)
    except Exception as exc:  # the engines raise OSError, RuntimeError or KeyError here
        raise InputError(
            f"{path}: cannot be read as NetCDF (truncated or corrupt file?): {exc}"
        ) from exc
    try:
        version = tree.attrs.get(SCHEMA_ATTR)
        if version is None:
            raise InputError(
                f"{path}: not a bayesirt posterior (no {SCHEMA_ATTR!r} root attribute)"
            )
        version = int(np.asarray(version).item())
        if version > SCHEMA_VERSION:
            raise InputError(
                f"{path}: written with posterior schema {version}, newer than this bayesirt "
                f"reads ({SCHEMA_VERSION}); upgrade bayesirt"
            )
        missing = [g for g in ("posterior", "sample_stats") if g not in tree.children]
        if missing:
            raise InputError(f"{path}: bayesirt posterior lacks group(s) {missing}")
        for name in tree.children:
            if name == "log_likelihood" and lazy_log_likelihood:
                continue
            tree[name].load()
    except ValueError:
        tree.close()
        raise
    except Exception as exc:  # data past the end of a truncated file fails only on read
        tree.close()
        raise InputError(f"{path}: data cannot be read (truncated or corrupt?): {exc}") from exc
    return tree


def posterior_attrs(tree: xr.DataTree) -> dict[str, Any]:
    """Return the root provenance attrs with the JSON-encoded ones decoded.

    Parameters
    ----------
    tree : xarray.DataTree
        A tree from :func:`load` or :func:`to_datatree`.

    Returns
    -------
    dict
        Attribute name -> value; ``config`` and ``provenance`` as dicts (``{}`` if absent
        or not valid JSON).
    """
    out: dict[str, Any] = {}
    for key, value in tree.attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    for key in ("config", "provenance"):
        raw = out.get(key)
        try:
            out[key] = json.loads(raw) if isinstance(raw, str) and raw else {}
        except json.JSONDecodeError:
            out[key] = {}
    return out
