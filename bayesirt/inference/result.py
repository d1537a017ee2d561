"""The in-memory result of a NUTS fit: what ``bayesirt.posteriors.save`` turns into NetCDF.

``FitResult`` is the hand-over point between inference and the posteriors module: plain
numpy arrays with named dimensions, so that the posteriors module never needs JAX and the
inference module never needs xarray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FitResult:
    """Draws and sampler statistics of one NUTS run, with the names needed to label them.

    Attributes
    ----------
    model_name : str
        Registry name of the fitted model (a key of ``bayesirt.models.MODELS``).
    posterior : dict of str to ndarray
        Every latent and deterministic site, each shaped ``(chains, draws, *site_shape)``.
    dims : dict of str to tuple of str
        Dimension names of each site's trailing axes, e.g. ``{"ability": ("model",
        "benchmark")}``; names are plate names (``model``, ``item``, ``benchmark``,
        ``category``, ``component``, ...). Sites with no trailing axes map to ``()``.
    sample_stats : dict of str to ndarray
        Per-draw sampler statistics shaped ``(chains, draws)``: ``diverging`` (bool),
        ``tree_depth`` (int), ``n_steps`` (int, leapfrog steps), ``energy``, ``step_size``,
        ``acceptance_rate``, ``lp`` (potential energy negated).
    log_likelihood : ndarray or None
        Pointwise log-likelihood ``(chains, draws, n_obs)`` when asked for, else None.
    constant_data : dict of str to ndarray
        Model inputs worth keeping beside the draws (index arrays, embedding projection),
        each with its dims in ``constant_dims``.
    constant_dims : dict of str to tuple of str
        Dimension names for ``constant_data`` entries.
    coords : dict of str to sequence of str
        Labels for named dimensions (``model`` -> model ids, ``item`` -> item ids, ...).
    config : dict
        The full fit configuration (model options, chains, warmup, draws, seed, device, ...),
        JSON-serialisable.
    provenance : dict
        Facts about the run: versions, device, wall times, data fingerprint, created_at.
    max_tree_depth : int
        The NUTS tree-depth limit used, so saturation can be counted later.
    """

    model_name: str
    posterior: dict[str, np.ndarray]
    dims: dict[str, tuple[str, ...]]
    sample_stats: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]
    coords: dict[str, Any]
    config: dict[str, Any]
    provenance: dict[str, Any]
    max_tree_depth: int
    log_likelihood: np.ndarray | None = None
    constant_data: dict[str, np.ndarray] = field(default_factory=dict)
    constant_dims: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def n_chains(self) -> int:
        """Number of chains."""
        return int(next(iter(self.sample_stats.values())).shape[0])

    @property
    def n_draws(self) -> int:
        """Number of kept draws per chain."""
        return int(next(iter(self.sample_stats.values())).shape[1])
