"""Numpy-only posterior predictive runtime for hierarchical IRT posteriors.

This package is shipped verbatim inside the competition submission (as
``bayesirt_runtime/predictive/``, beside ``errors.py`` and ``data/``), so it imports only
numpy, scipy and the standard library, uses only relative imports, and runs on Python 3.10
to 3.13. It takes arrays; files are parsed by ``bayesirt.data``.

Where things are:

* :mod:`.draws` -- :class:`PosteriorDraws`, the validated container of posterior draws;
* :mod:`.flatfile` -- :func:`save_flat` / :func:`load_flat`, the NetCDF3 artifact;
* :mod:`.items` -- :class:`ItemInfo`, how a caller describes a new item;
* :mod:`.labels` -- the in-memory label formats;
* :mod:`.prior` -- a new item's prior within each draw and the quadrature over it;
* :mod:`.neighbours` -- the nearest-neighbour difficulty prior and local ability offsets;
* :mod:`.unknown` -- abilities of models the posterior does not know;
* :mod:`.subjects` -- :class:`ModelInfo` and the metadata ability prior of such models;
* :mod:`.newbench`, :mod:`.gibbs` -- benchmarks the posterior does not know: drawn from the
  population of benchmarks, conditioned jointly on their labels;
* :mod:`.engine` -- label conditioning: importance weights, per-item (draw, node) weights;
* :mod:`.predict` -- :func:`predict_pairs`;
* :mod:`.acquisition` -- :func:`score_pairs` (BALD, EPIG, batch-aware order);
* :mod:`.inputs` -- the engine's inputs from a parsed data set (pipeline and bundle glue);
* :mod:`.weights` -- small numerical kernels (ESS, tempering, likelihood).

Probabilities are clipped to ``[1e-6, 1 - 1e-6]`` at the very end only.
"""

from . import inputs
from .acquisition import score_pairs
from .draws import PosteriorDraws
from .flatfile import FLAT_SCHEMA, load_flat, save_flat
from .items import ItemInfo, new_items_from_arrays
from .predict import predict_pairs
from .subjects import ModelInfo
from .weights import ReweightingWarning

__all__ = [
    "FLAT_SCHEMA",
    "ItemInfo",
    "ModelInfo",
    "PosteriorDraws",
    "ReweightingWarning",
    "inputs",
    "load_flat",
    "new_items_from_arrays",
    "predict_pairs",
    "save_flat",
    "score_pairs",
]
