"""Model metadata: parameter counts, instruct flags, the metadata file.

Part of :mod:`bayesirt.data` (see its docstring: what is read, how errors are said, and why
only numpy, pandas and the standard library may be imported).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError  # relative: data/ also ships in the bundle's runtime
from ..features import parse_release_date  # one date parser for files and streaming subjects
from .csvfiles import (
    _FALSE_TOKENS,
    _MISSING_TOKENS,
    _TRUE_TOKENS,
    _factorize_ids,
    _is_blank,
    _read_csv,
    _strings,
    _Where,
)

_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


_PARAM_RE = re.compile(
    r"^(?:(?P<mult>\d+)\s*[x\u00d7]\s*)?(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[kmbt]?)$",
    re.IGNORECASE,
)


def parse_param_count(value: Any) -> float:
    """Parse a parameter count such as ``"7B"``, ``"1.5T"``, ``"350M"``, ``"8x7B"``.

    Parameters
    ----------
    value : str or number or None
        ``"7B"`` -> 7e9, ``"1.5T"`` -> 1.5e12, ``"350M"`` -> 3.5e8, ``"8x7B"`` -> 5.6e10
        (mixture of experts: total), ``"34000000000"`` or ``3.4e10`` -> as is (units K, M, B,
        T, any case); blank, None, NaN, ``"unknown"`` -> NaN.

    Returns
    -------
    float
        The count, or NaN when unknown.

    Raises
    ------
    ValueError
        When the value is not understood or is negative / infinite.
    """
    if _is_blank(value):
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"param_count {value!r} is not a number of parameters")
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
    else:
        text = str(value).strip().replace("_", "")
        if text.lower() in _MISSING_TOKENS:
            return math.nan
        match = _PARAM_RE.match(text)
        if match:
            mult = float(match.group("mult")) if match.group("mult") else 1.0
            number = mult * float(match.group("num")) * _SCALE[match.group("unit").lower()]
        else:
            try:
                number = float(text)
            except ValueError:
                raise InputError(
                    f"param_count {value!r} is not understood (use e.g. 7B, 1.5T, 350M, 8x7B "
                    "or a plain number)"
                ) from None
    if not math.isfinite(number) or number < 0:
        raise InputError(f"param_count {value!r} must be a finite count >= 0")
    return number


def parse_is_instruct(value: Any) -> float:
    """Parse an ``is_instruct`` flag: True/False/1/0/yes/no (any case) or blank.

    Parameters
    ----------
    value : str or bool or number or None

    Returns
    -------
    float
        1.0, 0.0, or NaN when blank / unknown.

    Raises
    ------
    ValueError
        When the value is none of the above.
    """
    if _is_blank(value):
        return math.nan
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        if value in (0, 1):
            return float(value)
        raise InputError(f"is_instruct {value!r} is not True/False/1/0/yes/no")
    text = str(value).strip().lower()
    if text in _TRUE_TOKENS:
        return 1.0
    if text in _FALSE_TOKENS:
        return 0.0
    if text in _MISSING_TOKENS:
        return math.nan
    raise InputError(f"is_instruct {value!r} is not True/False/1/0/yes/no or blank")


def _parse_column(values: np.ndarray, parser: Any, where: _Where) -> np.ndarray:
    """Apply a scalar parser once per distinct value; errors name the first row holding it."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    parsed = np.empty(len(uniques), dtype=np.float64)
    for k, u in enumerate(uniques):
        try:
            parsed[k] = parser(u)
        except ValueError as exc:
            row = int(np.flatnonzero(codes == k)[0])
            raise InputError(f"{where(row)}: {exc}") from None
    return parsed[codes]


def _read_metadata(path: Path) -> pd.DataFrame:
    """Read model_metadata.csv into a frame by model_id (org, param_count, is_instruct, date).

    Raises
    ------
    ValueError
        Missing model_id column, blank or duplicate model_id, bad param_count / is_instruct.
    """
    where = _Where(path)
    frame = _read_csv(path, ["model_id"], ["org", "param_count", "is_instruct", "release_date"],
                      allow_no_rows=True)
    ids = _strings(frame, "model_id")
    _factorize_ids(ids, where, "model_id")
    dup = np.flatnonzero(pd.Series(ids).duplicated().to_numpy())
    if dup.size:
        row = int(dup[0])
        raise InputError(f"{where(row)}: duplicate model_id {ids[row]!r}")
    n = len(ids)
    org = _strings(frame, "org") if "org" in frame else np.full(n, "", dtype=object)
    params = (
        _parse_column(_strings(frame, "param_count"), parse_param_count, where)
        if "param_count" in frame else np.full(n, np.nan)
    )
    instruct = (
        _parse_column(_strings(frame, "is_instruct"), parse_is_instruct, where)
        if "is_instruct" in frame else np.full(n, np.nan)
    )
    released = (
        _parse_column(_strings(frame, "release_date"), parse_release_date, where)
        if "release_date" in frame else np.full(n, np.nan)
    )
    return pd.DataFrame(
        {"org": [str(o).strip() for o in org], "param_count": params, "is_instruct": instruct,
         "release_year": released},
        index=pd.Index(ids, dtype=object),
    )
