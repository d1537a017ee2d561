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

import datetime as _dt
import math
import re

import numpy as np

from .errors import InputError  # relative: this module also ships in the bundles' runtime

__all__ = ["FEATURES", "instruct_from_name", "model_features", "org_index",
           "param_count_from_name", "parse_release_date"]

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


#: Text a blank metadata field may hold.
MISSING_TOKENS = frozenset({"", "nan", "na", "n/a", "none", "null", "unknown", "?"})
# A size in a model's name: "70b", "1.5B", "8x7b", "350m" (between separators).
_NAME_SIZE = re.compile(r"(?:^|[-_/ .:])(?:(\d+)x)?(\d+(?:\.\d+)?)([bm])(?=$|[-_/ .:])", re.I)
_NAME_INSTRUCT = re.compile(r"(instruct|chat|-it(?:$|[-_])|rlhf|sft|dpo|assistant)", re.I)


def parse_release_date(value: object) -> float:
    """Parse a release date (``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYY``) into a fractional year.

    Parameters
    ----------
    value : str or None

    Returns
    -------
    float
        e.g. ``"2024-07-01"`` -> 2024.496 (day of year over the year's length), ``"2024"`` ->
        2024.5 (mid-year); NaN when blank / unknown.

    Raises
    ------
    InputError
        When the value is not such a date (a ``ValueError``).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    text = str(value).strip()
    if text.lower() in MISSING_TOKENS:
        return math.nan
    try:
        if len(text) == 4 and text.isdigit():
            return float(text) + 0.5
        if len(text) == 7:
            text = f"{text}-15"
        day = _dt.date.fromisoformat(text[:10])
    except ValueError:
        raise InputError(
            f"release_date {value!r} is not a date (use YYYY-MM-DD, YYYY-MM or YYYY)") from None
    start = _dt.date(day.year, 1, 1)
    length = (_dt.date(day.year + 1, 1, 1) - start).days
    return day.year + (day - start).days / length


def param_count_from_name(name: str) -> float:
    """Parameter count read from a model's name (``"llama-3-70b-instruct"`` -> 7e10).

    Mixtures (``"8x7b"``) count all experts. NaN when the name states no size.
    """
    found = _NAME_SIZE.findall(str(name))
    if not found:
        return math.nan
    mult, num, unit = found[-1]
    return (int(mult) if mult else 1) * float(num) * (1e9 if unit.lower() == "b" else 1e6)


def instruct_from_name(name: str) -> float:
    """1.0 when the name marks an instruct / chat model, NaN otherwise (base is not implied)."""
    return 1.0 if _NAME_INSTRUCT.search(str(name)) else math.nan
