"""Model metadata as the features of the ability prior (numpy only; shipped in the bundles).

One encoding serves the fit (``bayesirt.models.inputs``) and the prediction runtime
(``bayesirt.predictive``), so a model unseen in training is encoded exactly as the training
models were: the centre and scale of each continuous feature are computed on the training
models once and stored with the posterior.

Features (:data:`FEATURES`), each row one model:

* ``log10_params``: log10 of the parameter count, standardised; 0 where unknown;
* ``params_unknown``: 1 where the parameter count is unknown;
* ``instruct``: 1 instruct / chat, 0 base, 0 where unknown; ``instruct_unknown``;
* ``release_year``: the release date as a fractional year, standardised; 0 where unknown;
  ``release_unknown``.

The organisation is not a feature column: it indexes a partially pooled effect (a model of
an organisation the posterior does not know gets the population mean, 0).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEATURES", "model_features", "org_index"]

FEATURES = ("log10_params", "params_unknown", "instruct", "instruct_unknown", "release_year",
            "release_unknown")
#: Continuous features (standardised) and the column of their missingness indicator.
_CONTINUOUS = {"log10_params": 1, "release_year": 5}


def model_features(param_count: np.ndarray, is_instruct: np.ndarray, release_year: np.ndarray,
                   center: np.ndarray | None = None, scale: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode model metadata as the features :data:`FEATURES`.

    Parameters
    ----------
    param_count, is_instruct, release_year : array_like of float, shape (n,)
        NaN where unknown (as ``bayesirt.data`` parses them).
    center, scale : ndarray, shape (len(FEATURES),), optional
        The training models' centre and scale; computed from these rows when None (scale 1
        where fewer than two values are known or they do not vary; centre 0 and scale 1 for
        the 0/1 columns).

    Returns
    -------
    features : ndarray of float64, shape (n, len(FEATURES))
    center, scale : ndarray of float64, shape (len(FEATURES),)
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log_params = np.log10(np.asarray(param_count, dtype=np.float64))
    log_params[~np.isfinite(log_params)] = np.nan
    raw = {"log10_params": log_params,
           "instruct": np.asarray(is_instruct, dtype=np.float64),
           "release_year": np.asarray(release_year, dtype=np.float64)}
    n = log_params.shape[0]
    if center is None or scale is None:
        center, scale = np.zeros(len(FEATURES)), np.ones(len(FEATURES))
        for name in _CONTINUOUS:
            known = raw[name][np.isfinite(raw[name])]
            col = FEATURES.index(name)
            if known.size >= 2 and known.std() > 0:
                center[col], scale[col] = known.mean(), known.std()
            elif known.size:
                center[col] = known.mean()
    out = np.zeros((n, len(FEATURES)))
    for name, value in raw.items():
        col = FEATURES.index(name)
        unknown = ~np.isfinite(value)
        out[:, col] = np.where(unknown, 0.0, (np.where(unknown, 0.0, value) - center[col])
                               / scale[col])
        out[:, col + 1] = unknown
    return out, np.asarray(center, dtype=np.float64), np.asarray(scale, dtype=np.float64)


def org_index(orgs: list[str] | tuple[str, ...], org_ids: tuple[str, ...]) -> np.ndarray:
    """Index of each model's organisation in ``org_ids``; -1 where blank or unknown.

    Parameters
    ----------
    orgs : sequence of str, length n
    org_ids : tuple of str
        The organisations the posterior knows.

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    pos = {o: k for k, o in enumerate(org_ids)}
    return np.asarray([pos.get(str(o).strip(), -1) if str(o).strip() else -1 for o in orgs],
                      dtype=np.int64)
