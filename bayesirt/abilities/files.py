"""Ability tables on disk: CSV that round-trips exactly, the track-2 scores file, JSON.

Every file is written atomically (temporary file beside it, then renamed), so a failure
never leaves a half-written table under the final name.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesirt.abilities.table import COLUMNS, DTYPES
from bayesirt.errors import InputError
from bayesirt.posteriors.io import atomic_path

__all__ = ["TRACK2_HEADER", "read_csv", "records", "write_csv", "write_json", "write_track2"]

#: Header of the competition's ``track2_scores.csv``.
TRACK2_HEADER = ("model_id", "ability_score")

_P_TOP = re.compile(r"^p_top\d+$")
_REQUIRED = tuple(c for c in COLUMNS if c != "benchmark")


def write_csv(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write an ability table as CSV; :func:`read_csv` reads back an equal frame.

    Floats are written in their shortest exact decimal form (Python's ``repr``), so the
    round trip is exact, not merely close.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`bayesirt.abilities.ability_table`.
    path : path-like
        CSV to write; its folder is created if missing.

    Returns
    -------
    pathlib.Path
    """
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read an ability table written by :func:`write_csv`, with its dtypes restored.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    pandas.DataFrame
        Equal (values, dtypes, column order) to the table that was written.

    Raises
    ------
    InputError
        If the file lacks an ability table's columns.
    FileNotFoundError
        If ``path`` does not exist.
    """
    path = Path(path)
    header = pd.read_csv(path, nrows=0).columns.tolist()
    missing = [c for c in _REQUIRED if c not in header]
    if missing or not any(_P_TOP.match(c) for c in header):
        raise InputError(f"{path}: not an ability table (missing columns "
                         f"{missing or ['p_top<k>']}); write one with bayesirt abilities")
    dtypes = {c: DTYPES[c] if c in DTYPES else "float64" for c in header}
    # Names are text whatever they look like: "NA", "null" or "1e3" stay strings, and
    # round_trip parsing gives back the very float64 that was written.
    return pd.read_csv(path, dtype=dtypes, keep_default_na=False,
                       float_precision="round_trip")


def write_track2(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write the competition's track-2 file: ``model_id,ability_score`` per model.

    Parameters
    ----------
    table : pandas.DataFrame
        A per-model ability table (not ``by_benchmark``); the score is the posterior mean
        of the general ability. Rows keep the table's order (best first).
    path : path-like

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        If ``table`` has one row per (model, benchmark): track 2 scores each model once.
    """
    if "benchmark" in table.columns:
        raise InputError("track2 scores one ability per model; use the per-model table "
                         "(without --by-benchmark)")
    scores = pd.DataFrame({TRACK2_HEADER[0]: table["model"], TRACK2_HEADER[1]: table["mean"]})
    with atomic_path(path) as tmp:
        scores.to_csv(tmp, index=False)
    return Path(path)


def _native(value: Any) -> Any:
    """JSON-serialisable form of a numpy scalar (json refuses np.int64, np.bool_)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Return the rows of a table as JSON-ready dicts (native Python values), in order."""
    return [{key: _native(v) if isinstance(v, np.generic) else v for key, v in row.items()}
            for row in table.to_dict(orient="records")]


def write_json(table: pd.DataFrame, path: str | os.PathLike, *,
               provenance: dict[str, Any], options: dict[str, Any]) -> Path:
    """Write the table as JSON: the rows as records plus where they come from.

    Parameters
    ----------
    table : pandas.DataFrame
    path : path-like
    provenance : dict
        The posterior's ``path``, ``model_name``, ``fingerprint``... (see
        :func:`bayesirt.abilities.provenance`).
    options : dict
        ``by_benchmark``, ``top_k``, ``interval``: what the numbers mean.

    Returns
    -------
    pathlib.Path
        The file: ``{"provenance": {...}, "options": {...}, "abilities": [{...}, ...]}``.
    """
    doc = {"provenance": provenance, "options": options, "abilities": records(table)}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, default=_native) + "\n", encoding="utf-8")
    return Path(path)
