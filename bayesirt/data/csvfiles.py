"""Low-level readers: the file layout, CSV reading with line-exact errors, 0/1 tokens, fingerprints.

Part of :mod:`bayesirt.data` (see its docstring: what is read, how errors are said, and why
only numpy, pandas and the standard library may be imported).
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError  # relative: data/ also ships in the bundle's runtime

TRAIN_RESPONSES = "train_responses.csv"


TRAIN_ITEMS = "train_items.csv"


MODEL_METADATA = "model_metadata.csv"


TRAIN_EMBEDDINGS = "item_embeddings.npy"


TEST_ITEMS = "test_items.csv"


TEST_PAIRS = "test_pairs.csv"


TEST_EMBEDDINGS = "test_item_embeddings.npy"


#: Accepted names of the 0/1 label in labeled pairs, in order of preference. ``response`` is the
#: training files' name, ``label`` the ground-truth files' name; the rest are common spellings.
LABEL_KEYS = ("response", "label", "correct", "is_correct", "y", "value")


#: Benchmark given to every item of a long-form file without a ``benchmark`` column.
DEFAULT_BENCHMARK = "default"


# Textual 0/1 responses accepted after stripping whitespace. "0.0"/"1.0" are what a float
# column round-trips to; anything else (0.5, yes, blank, NaN) is an error, never a guess.
_BINARY_TOKENS = {"0": 0, "1": 1, "0.0": 0, "1.0": 1}


_TRUE_TOKENS = {"true", "t", "yes", "y", "1", "1.0"}


_FALSE_TOKENS = {"false", "f", "no", "n", "0", "0.0"}


_MISSING_TOKENS = {"", "nan", "na", "n/a", "none", "null", "unknown", "?"}


_CHUNK = 1 << 20


class _Where:
    """Names a place in an input file: ``path, line N`` for CSV, ``path, row N`` for Parquet."""

    def __init__(self, path: Path, kind: str = "csv") -> None:
        self.path = path
        self.kind = kind

    def __call__(self, row: int) -> str:
        """Describe data row ``row`` (0-based, as pandas counts rows) for an error message."""
        if self.kind == "csv":
            return f"{self.path}, line {_csv_line(self.path, row)}"
        return f"{self.path}, row {row + 1}"

    def __str__(self) -> str:
        return str(self.path)


def _csv_line(path: Path, row: int) -> int | str:
    """Return the 1-based physical line where data row ``row`` starts.

    Only called on the error path: quoted fields (item texts) may span several lines, so the
    line is found by re-reading the file with the csv module, which counts physical lines.
    Blank lines are skipped, as pandas skips them.
    """
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        end = reader.line_num
        seen = -1
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record:
                continue
            seen += 1
            if seen == row:
                return start
    return "?"


def _decode_error(path: Path, exc: UnicodeDecodeError) -> ValueError:
    """Turn a decoding failure into a ValueError naming the file, line and byte offset."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        offset = err.start
        line = raw.count(b"\n", 0, offset) + 1
        bad = raw[offset : offset + 4]
        return ValueError(
            f"{path}, line {line}: not valid UTF-8 (byte offset {offset}, bytes {bad!r}); "
            "save the file as UTF-8"
        )
    return ValueError(f"{path}: not valid UTF-8 ({exc})")


def _require_file(path: Path) -> None:
    """Raise ValueError when ``path`` is not an existing, non-empty file."""
    if not path.is_file():
        raise InputError(f"{path}: required file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (expected a header line and data rows)")


def _read_csv(
    path: Path,
    required: Sequence[str],
    optional: Sequence[str] = (),
    *,
    alternatives: Sequence[str] = (),
    allow_no_rows: bool = False,
) -> pd.DataFrame:
    """Read the named columns of a CSV file as strings (object dtype, blanks as ``""``).

    Parameters
    ----------
    path : Path
        The CSV file (UTF-8, header line first).
    required : sequence of str
        Columns that must be present.
    optional : sequence of str
        Columns read when present.
    alternatives : sequence of str
        Exactly one of these must be present (the first found is read); used for the label
        column of labeled pairs.
    allow_no_rows : bool
        Accept a file with a header and no data rows.

    Returns
    -------
    DataFrame
        One object column per column found, named as in ``required`` / ``optional`` /
        ``alternatives``, in file row order (blank lines skipped).

    Raises
    ------
    ValueError
        Missing or empty file, missing column, malformed CSV, non-UTF-8 bytes, no data rows.
    """
    _require_file(path)
    # na_filter=False keeps every field a string, so "NA" stays an id and a blank response is
    # "" (reported as blank) instead of a NaN that would be silently cast.
    options: dict[str, Any] = {
        "encoding": "utf-8",
        "na_filter": False,
        "engine": "c",
        "skipinitialspace": False,
    }
    try:
        header = pd.read_csv(path, nrows=0, **options)
    except UnicodeDecodeError as exc:
        raise _decode_error(path, exc) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: cannot read the CSV header ({exc})") from None
    names = [str(c).strip().lstrip("\ufeff") for c in header.columns]
    wanted: list[str] = []
    for col in required:
        if col not in names:
            raise InputError(
                f"{path}, line 1: missing column {col!r} (header has {names})"
            )
        wanted.append(col)
    if alternatives:
        found = [c for c in alternatives if c in names]
        if not found:
            raise InputError(
                f"{path}, line 1: no label column; expected one of {list(alternatives)} "
                f"(header has {names})"
            )
        wanted.append(found[0])
    wanted += [c for c in optional if c in names and c not in wanted]
    # All columns are read (not usecols): only then does the parser reject a row with too
    # many fields, which usually means broken quoting upstream.
    try:
        frame = pd.read_csv(path, dtype=object, **options)
    except UnicodeDecodeError as exc:
        raise _decode_error(path, exc) from None
    except (pd.errors.ParserError, ValueError) as exc:
        msg = str(exc).strip().replace("\n", " ")
        raise InputError(f"{path}: malformed CSV ({msg})") from None
    if len(frame) and not isinstance(frame.index, pd.RangeIndex):
        # pandas takes extra leading fields as an index when every row has more fields than
        # the header; that would shift every column by one, silently.
        raise InputError(
            f"{path}, line 2: data rows have more fields than the header's {len(names)}"
        )
    frame.columns = names
    frame = frame[wanted]
    if len(frame) == 0 and not allow_no_rows:
        raise InputError(f"{path}: no data rows after the header")
    return frame


def _strings(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Column as an object array of str; a short row's missing field (NaN) becomes ``""``."""
    values = frame[column].to_numpy(dtype=object)
    missing = pd.isna(values)
    if missing.any():
        values = values.copy()
        values[missing] = ""
    return values


def _factorize_ids(values: np.ndarray, where: _Where, column: str) -> tuple[np.ndarray, list[str]]:
    """Factorize an id column in order of first appearance; blank ids are an error.

    Returns
    -------
    codes : ndarray of int64, (n,)
    uniques : list of str
    """
    codes, uniques = pd.factorize(values)
    uniques = [str(u) for u in uniques]
    blank = [k for k, u in enumerate(uniques) if u.strip() == ""]
    if blank:
        row = int(np.flatnonzero(np.isin(codes, blank))[0])
        raise InputError(f"{where(row)}: blank {column}")
    return codes, uniques


def _binary(values: np.ndarray, where: _Where, column: str) -> np.ndarray:
    """Parse a column of 0/1 labels given as text, numbers or booleans.

    Returns
    -------
    ndarray of int8, (n,)

    Raises
    ------
    ValueError
        At the first value that is not 0 or 1 (``0.5``, ``yes``, blank, NaN), naming its row.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    table = np.array([_binary_token(u) for u in uniques] + [-1], dtype=np.int8)
    parsed = table[codes]
    bad = np.flatnonzero(parsed < 0)
    if bad.size:
        row = int(bad[0])
        value = values[row]
        shown = "blank" if _is_blank(value) else repr(value)
        raise InputError(f"{where(row)}: {column} must be 0 or 1, got {shown}")
    return parsed


def _is_blank(value: Any) -> bool:
    """Tell whether a value is blank: None, NaN and whitespace-only strings."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _binary_token(value: Any) -> int:
    """Return 0/1 for an acceptable label value, -1 otherwise."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer, float, np.floating)):
        return int(value) if value in (0, 1) else -1
    if isinstance(value, str):
        return _BINARY_TOKENS.get(value.strip(), -1)
    return -1


def fingerprint_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """Hash the bytes of several files, in the given order, streaming 1 MiB at a time.

    Parameters
    ----------
    paths : iterable of path-like
        Files to hash; their concatenated bytes are hashed (names are not).

    Returns
    -------
    str
        The sha256 hex digest.

    Raises
    ------
    ValueError
        When a file does not exist.
    """
    digest = hashlib.sha256()
    for path in paths:
        try:
            with open(path, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(_CHUNK), b""):
                    digest.update(chunk)
        except FileNotFoundError:
            raise InputError(f"{path}: required file not found") from None
    return digest.hexdigest()
