"""The one place raw data files are parsed: CSV / Parquet / ``.npy`` -> validated index arrays.

Everything downstream (models, inference, predictive, submission) sees only :class:`IRTData`:
int32 index arrays, 0/1 int8 responses, and the id <-> index maps. All checks on the raw
files happen here and fail with a one-line :class:`ValueError` naming the file, the line (as
a text editor numbers it, header = line 1) and the offending value.

This module is shipped inside the competition submission ZIP, so it must import with numpy,
pandas and the standard library only and run on Python 3.10 (pyarrow is imported lazily, for
Parquet input only).

Layouts understood by :func:`load`::

    root/train/train_responses.csv   model_id,item_id,response
    root/train/train_items.csv       item_id,item_text,benchmark,category
    root/train/model_metadata.csv    model_id,org,param_count,is_instruct[,release_date] (optional)
    root/train/item_embeddings.npy   float (n_train_items, d), train_items.csv row order (optional)
    root/test/test_items.csv         same columns as train_items.csv
    root/test/test_pairs.csv         model_id,item_id
    root/test/test_item_embeddings.npy                                                (optional)
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import InputError  # relative: data.py also ships in the bundle's runtime
from .features import parse_release_date  # one date parser for files and streaming subjects

__all__ = [
    "LABEL_KEYS",
    "DataWarning",
    "IRTData",
    "bundled_dataset",
    "fingerprint_files",
    "load",
    "parse_is_instruct",
    "parse_param_count",
    "parse_release_date",
    "read_item_texts",
    "read_labeled_pairs",
    "read_pairs",
    "summarize",
    "without_benchmark",
    "without_models",
]

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
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_PARAM_RE = re.compile(
    r"^(?:(?P<mult>\d+)\s*[x\u00d7]\s*)?(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[kmbt]?)$",
    re.IGNORECASE,
)
_CHUNK = 1 << 20


class DataWarning(UserWarning):
    """Something in the data is allowed but worth knowing (unknown test model, item overlap)."""


# --------------------------------------------------------------------------------------------
# The data container
# --------------------------------------------------------------------------------------------


def _ro(array: np.ndarray) -> np.ndarray:
    """Return ``array`` marked read-only, so a frozen IRTData cannot be changed in place."""
    array.setflags(write=False)
    return array


def _index_array(value: Any, name: str, dtype: Any = np.int32) -> np.ndarray:
    """Coerce ``value`` to a 1-d array of ``dtype``; raise naming ``name`` when impossible."""
    array = np.asarray(value)
    if array.ndim != 1:
        raise InputError(f"IRTData.{name} must be 1-d, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iub":
        raise TypeError(f"IRTData.{name} must hold integers, got dtype {array.dtype}")
    return _ro(np.array(array, dtype=dtype))


def _check_range(array: np.ndarray, upper: int, name: str, what: str) -> None:
    """Raise ValueError when an index in ``array`` falls outside ``[0, upper)``."""
    bad = np.flatnonzero((array < 0) | (array >= upper))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"IRTData.{name}[{i}] = {int(array[i])} is out of range for {upper} {what}"
        )


@dataclass(frozen=True, eq=False, repr=False)
class IRTData:
    """Validated response data: long-form index arrays plus the id <-> index maps.

    Made by :func:`load`; it may also be built directly (simulations, tests), in which case
    the arrays are coerced to the dtypes below and checked. All arrays are read-only.

    Attributes
    ----------
    model_ids : tuple of str, (n_models,)
        Training models (sorted), then models seen only in test pairs (sorted).
    item_ids : tuple of str, (n_items,)
        Training items in ``train_items.csv`` order, then new test items in
        ``test_items.csv`` order.
    benchmark_ids : tuple of str, (n_benchmarks,)
        Sorted benchmark names.
    category_ids : tuple of str, (n_categories,)
        Sorted ``"benchmark/category"`` strings.
    model_idx, item_idx : ndarray of int32, (n_obs,)
        Model and item index of each training response (file order).
    response : ndarray of int8, (n_obs,)
        The training responses, 0 or 1.
    item_benchmark : ndarray of int32, (n_items,)
        Benchmark index of each item.
    item_category : ndarray of int32, (n_items,)
        Category index of each item.
    category_benchmark : ndarray of int32, (n_categories,)
        Benchmark index of each category.
    n_train_items : int
        Items ``0 .. n_train_items - 1`` are training items; responses only refer to them.
    n_train_models : int
        Models ``0 .. n_train_models - 1`` have training responses.
    item_embeddings : ndarray of float32, (n_items, d), or None
        Item embeddings, training rows then test rows.
    model_param_count : ndarray of float64, (n_models,)
        Parameter count, NaN where unknown.
    model_org : tuple of str, (n_models,)
        Organisation, ``""`` where unknown.
    model_is_instruct : ndarray of float64, (n_models,)
        1.0 (instruct / chat), 0.0 (base) or NaN (unknown).
    model_release_year : ndarray of float64, (n_models,)
        Release date as a fractional year (2024.5 = early July 2024), NaN where unknown.
    test_model_idx, test_item_idx : ndarray of int32, (n_test,), or None
        The rows of ``test_pairs.csv`` in file order; None without a test folder.
    fingerprint : str
        sha256 (hex) over the training files' bytes; see :func:`fingerprint_files`.
    source : str
        Where the data came from (a path).

    Raises
    ------
    ValueError
        On construction, when shapes disagree or an index is out of range.
    TypeError
        When an index array does not hold integers.
    """

    model_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    benchmark_ids: tuple[str, ...]
    category_ids: tuple[str, ...]
    model_idx: np.ndarray
    item_idx: np.ndarray
    response: np.ndarray
    item_benchmark: np.ndarray
    item_category: np.ndarray
    category_benchmark: np.ndarray
    n_train_items: int | None = None
    n_train_models: int | None = None
    item_embeddings: np.ndarray | None = None
    model_param_count: np.ndarray | None = None
    model_org: tuple[str, ...] | None = None
    model_is_instruct: np.ndarray | None = None
    model_release_year: np.ndarray | None = None
    test_model_idx: np.ndarray | None = None
    test_item_idx: np.ndarray | None = None
    fingerprint: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        """Coerce dtypes, fill defaults, and check every shape and index range."""
        # object.__setattr__ is the documented way to normalise fields of a frozen dataclass.
        put = object.__setattr__
        for name in ("model_ids", "item_ids", "benchmark_ids", "category_ids"):
            ids = tuple(str(v) for v in getattr(self, name))
            if len(set(ids)) != len(ids):
                raise InputError(f"IRTData.{name} holds duplicate ids")
            put(self, name, ids)
        n_models, n_items = len(self.model_ids), len(self.item_ids)
        n_bench, n_cat = len(self.benchmark_ids), len(self.category_ids)
        for name in ("model_idx", "item_idx", "item_benchmark", "item_category",
                     "category_benchmark"):
            put(self, name, _index_array(getattr(self, name), name))
        put(self, "response", _index_array(self.response, "response", np.int8))
        n_train_items = n_items if self.n_train_items is None else int(self.n_train_items)
        n_train_models = n_models if self.n_train_models is None else int(self.n_train_models)
        if not 0 <= n_train_items <= n_items:
            raise InputError(f"IRTData.n_train_items = {n_train_items} not in [0, {n_items}]")
        if not 0 <= n_train_models <= n_models:
            raise InputError(f"IRTData.n_train_models = {n_train_models} not in [0, {n_models}]")
        put(self, "n_train_items", n_train_items)
        put(self, "n_train_models", n_train_models)
        n_obs = self.model_idx.shape[0]
        for name in ("item_idx", "response"):
            if getattr(self, name).shape[0] != n_obs:
                raise InputError(
                    f"IRTData.{name} has {getattr(self, name).shape[0]} entries but model_idx "
                    f"has {n_obs}"
                )
        for name, length, what in (("item_benchmark", n_items, "items"),
                                   ("item_category", n_items, "items"),
                                   ("category_benchmark", n_cat, "categories")):
            if getattr(self, name).shape[0] != length:
                raise InputError(
                    f"IRTData.{name} has {getattr(self, name).shape[0]} entries for "
                    f"{length} {what}"
                )
        _check_range(self.model_idx, n_train_models, "model_idx", "training models")
        _check_range(self.item_idx, n_train_items, "item_idx", "training items")
        _check_range(self.item_benchmark, n_bench, "item_benchmark", "benchmarks")
        _check_range(self.item_category, n_cat, "item_category", "categories")
        _check_range(self.category_benchmark, n_bench, "category_benchmark", "benchmarks")
        bad = np.flatnonzero((self.response != 0) & (self.response != 1))
        if bad.size:
            raise InputError(
                f"IRTData.response[{bad[0]}] = {self.response[bad[0]]} is not 0 or 1"
            )
        mismatch = np.flatnonzero(
            self.category_benchmark[self.item_category] != self.item_benchmark
        )
        if mismatch.size:
            j = int(mismatch[0])
            raise InputError(
                f"IRTData: item {self.item_ids[j]!r} has benchmark "
                f"{self.benchmark_ids[self.item_benchmark[j]]!r} but its category "
                f"{self.category_ids[self.item_category[j]]!r} belongs to another benchmark"
            )
        if self.item_embeddings is not None:
            emb = np.asarray(self.item_embeddings)
            if emb.ndim != 2 or emb.shape[0] != n_items:
                raise InputError(
                    f"IRTData.item_embeddings must have shape ({n_items}, d), got {emb.shape}"
                )
            if emb.dtype.kind != "f":
                raise TypeError(f"IRTData.item_embeddings must be floating, got {emb.dtype}")
            put(self, "item_embeddings", _ro(np.array(emb, dtype=np.float32)))
        self._model_vector("model_param_count", np.nan)
        self._model_vector("model_is_instruct", np.nan)
        self._model_vector("model_release_year", np.nan)
        org = ("",) * n_models if self.model_org is None else tuple(str(v) for v in self.model_org)
        if len(org) != n_models:
            raise InputError(f"IRTData.model_org has {len(org)} entries for {n_models} models")
        put(self, "model_org", org)
        if (self.test_model_idx is None) != (self.test_item_idx is None):
            raise InputError("IRTData.test_model_idx and test_item_idx must both be given or None")
        if self.test_model_idx is not None:
            put(self, "test_model_idx", _index_array(self.test_model_idx, "test_model_idx"))
            put(self, "test_item_idx", _index_array(self.test_item_idx, "test_item_idx"))
            if self.test_model_idx.shape != self.test_item_idx.shape:
                raise InputError("IRTData.test_model_idx and test_item_idx differ in length")
            _check_range(self.test_model_idx, n_models, "test_model_idx", "models")
            _check_range(self.test_item_idx, n_items, "test_item_idx", "items")
        put(self, "fingerprint", str(self.fingerprint))
        put(self, "source", str(self.source))

    def _model_vector(self, name: str, fill: float) -> None:
        """Normalise a float64 per-model field, filling ``fill`` when it is None."""
        n_models = len(self.model_ids)
        value = getattr(self, name)
        array = np.full(n_models, fill) if value is None else np.array(value, dtype=np.float64)
        if array.shape != (n_models,):
            raise InputError(f"IRTData.{name} must have shape ({n_models},), got {array.shape}")
        object.__setattr__(self, name, _ro(array))

    def __repr__(self) -> str:
        """Sizes only: the id tuples can hold tens of thousands of strings."""
        emb = "None" if self.item_embeddings is None else f"{self.item_embeddings.shape[1]}-d"
        n_test = "None" if self.test_model_idx is None else str(self.test_model_idx.shape[0])
        return (
            f"IRTData(n_models={self.n_models} ({self.n_train_models} train), "
            f"n_items={self.n_items} ({self.n_train_items} train), "
            f"n_benchmarks={self.n_benchmarks}, n_categories={self.n_categories}, "
            f"n_obs={self.n_obs}, n_test={n_test}, embeddings={emb}, source={self.source!r})"
        )

    @property
    def n_models(self) -> int:
        """Number of models, training and test-only."""
        return len(self.model_ids)

    @property
    def n_items(self) -> int:
        """Number of items, training and new test items."""
        return len(self.item_ids)

    @property
    def n_benchmarks(self) -> int:
        """Number of benchmarks."""
        return len(self.benchmark_ids)

    @property
    def n_categories(self) -> int:
        """Number of ``benchmark/category`` categories."""
        return len(self.category_ids)

    @property
    def n_obs(self) -> int:
        """Number of training responses."""
        return int(self.response.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test pairs (0 without a test folder)."""
        return 0 if self.test_model_idx is None else int(self.test_model_idx.shape[0])

    @cached_property
    def model_index(self) -> dict[str, int]:
        """Model id -> index."""
        return {m: i for i, m in enumerate(self.model_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        """Item id -> index."""
        return {j: i for i, j in enumerate(self.item_ids)}

    @cached_property
    def benchmark_index(self) -> dict[str, int]:
        """Benchmark name -> index."""
        return {b: i for i, b in enumerate(self.benchmark_ids)}

    @cached_property
    def category_index(self) -> dict[str, int]:
        """``benchmark/category`` -> index."""
        return {c: i for i, c in enumerate(self.category_ids)}

    def lookup_pairs(
        self, model_ids: Sequence[str], item_ids: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Map (model id, item id) pairs to indices, e.g. for labeled pairs.

        Parameters
        ----------
        model_ids, item_ids : sequence of str, (n,)
            Pair ids, as returned by :func:`read_labeled_pairs`.

        Returns
        -------
        model_idx, item_idx : ndarray of int32, (n,)

        Raises
        ------
        ValueError
            When the lengths differ or an id is unknown (the first one is named).
        """
        models = pd.Index(self.model_ids).get_indexer(np.asarray(model_ids, dtype=object))
        items = pd.Index(self.item_ids).get_indexer(np.asarray(item_ids, dtype=object))
        if models.shape != items.shape:
            raise InputError(f"{models.shape[0]} model ids but {items.shape[0]} item ids")
        for idx, ids, what in ((models, model_ids, "model"), (items, item_ids, "item")):
            bad = np.flatnonzero(idx < 0)
            if bad.size:
                raise InputError(
                    f"pair {int(bad[0])}: unknown {what} id {ids[int(bad[0])]!r} "
                    f"({bad.size} unknown in all)"
                )
        return models.astype(np.int32), items.astype(np.int32)


# --------------------------------------------------------------------------------------------
# Low-level readers
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Metadata parsing
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Items, responses, pairs, embeddings
# --------------------------------------------------------------------------------------------


@dataclass
class _Items:
    """Items of one items file (or of a long-form file): ids, benchmark and category names."""

    ids: list[str]
    benchmark: np.ndarray  # object (n,)
    category: np.ndarray  # object (n,), blank filled with the benchmark name


def _read_items(path: Path, *, allow_no_rows: bool = False) -> _Items:
    """Read train_items.csv / test_items.csv (item_text is parsed but not kept: nothing uses it).

    Raises
    ------
    ValueError
        Missing column, blank item_id or benchmark, duplicate item_id.
    """
    where = _Where(path)
    frame = _read_csv(path, ["item_id", "benchmark"], ["category"], allow_no_rows=allow_no_rows)
    ids = _strings(frame, "item_id")
    codes, uniques = _factorize_ids(ids, where, "item_id")
    if len(uniques) != len(ids):
        row = int(np.flatnonzero(pd.Series(codes).duplicated().to_numpy())[0])
        first = int(np.flatnonzero(codes == codes[row])[0])
        raise InputError(
            f"{where(row)}: duplicate item_id {ids[row]!r} (first at {where(first)})"
        )
    bench = np.array([str(b).strip() for b in _strings(frame, "benchmark")], dtype=object)
    blank = np.flatnonzero(bench == "")
    if blank.size:
        raise InputError(f"{where(int(blank[0]))}: blank benchmark for item {ids[blank[0]]!r}")
    if "category" in frame:
        cat = np.array([str(c).strip() for c in _strings(frame, "category")], dtype=object)
        cat = np.where(cat == "", bench, cat)
    else:
        cat = bench.copy()
    return _Items([str(i) for i in ids], bench, cat)


def _read_embeddings(path: Path, n_rows: int, items_file: Path) -> np.ndarray:
    """Load an ``.npy`` embedding matrix and check it against its items file.

    Returns
    -------
    ndarray of float32, (n_rows, d)

    Raises
    ------
    ValueError
        Unreadable file, not 2-d, not floating, wrong row count, or a non-finite value.
    """
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: cannot read as a .npy array ({exc})") from None
    if array.dtype.kind != "f":
        raise InputError(f"{path}: embeddings must be floating point, got dtype {array.dtype}")
    if array.ndim != 2:
        raise InputError(f"{path}: embeddings must be 2-d (items, dim), got shape {array.shape}")
    if array.shape[0] != n_rows:
        raise InputError(
            f"{path}: {array.shape[0]} embedding rows but {items_file} has {n_rows} items "
            "(rows must follow the items file's order)"
        )
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise InputError(f"{path}: row {row} (0-based, item {row + 1} of {items_file.name}) "
                         "holds a non-finite value")
    return np.ascontiguousarray(array, dtype=np.float32)


@dataclass
class _Train:
    """The parsed training side, before ids are turned into the final index space."""

    items: _Items
    model_codes: np.ndarray  # (n_obs,) codes into model_names
    model_names: list[str]
    item_idx: np.ndarray  # (n_obs,) into items.ids
    response: np.ndarray  # int8 (n_obs,)
    embeddings: np.ndarray | None
    metadata: pd.DataFrame | None
    files: list[Path]
    source: str


def _resolve_duplicates(
    model_codes: np.ndarray,
    item_idx: np.ndarray,
    response: np.ndarray,
    n_items: int,
    model_names: list[str],
    item_ids: list[str],
    where: _Where,
    duplicates: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detect repeated (model, item) rows; raise, or keep the majority vote (``"mean"``).

    With ``duplicates="mean"`` each repeated pair keeps one row (where it first appears) whose
    response is the majority of its rows; a tie (mean exactly 0.5) has no majority and is an
    error, since any tie-break would invent a label.
    """
    key = model_codes.astype(np.int64) * n_items + item_idx.astype(np.int64)
    dup = pd.Series(key).duplicated().to_numpy()
    if not dup.any():
        return model_codes, item_idx, response
    if duplicates == "error":
        row = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(key == key[row])[0])
        raise InputError(
            f"{where(row)}: duplicate (model_id, item_id) = "
            f"({model_names[model_codes[row]]!r}, {item_ids[item_idx[row]]!r}), first at "
            f"{where(first)}; pass duplicates='mean' to keep the majority vote"
        )
    group, _ = pd.factorize(key)
    n_groups = int(group.max()) + 1
    ones = np.bincount(group, weights=response.astype(np.float64), minlength=n_groups)
    count = np.bincount(group, minlength=n_groups)
    tie = np.flatnonzero(2 * ones == count)
    if tie.size:
        row = int(np.flatnonzero(group == tie[0])[0])
        raise InputError(
            f"{where(row)}: (model_id, item_id) = ({model_names[model_codes[row]]!r}, "
            f"{item_ids[item_idx[row]]!r}) has {int(count[tie[0]])} rows with a tied vote; "
            "duplicates='mean' keeps the majority and cannot break a tie"
        )
    keep = ~dup  # first occurrences, in file order = group order (factorize is order-preserving)
    majority = (2 * ones > count).astype(np.int8)
    return model_codes[keep], item_idx[keep], majority


def _map_items(
    values: np.ndarray, known: Sequence[str], where: _Where, known_file: str | Path
) -> np.ndarray:
    """Map an item_id column onto ``known`` ids; an unknown item is an error naming its row."""
    codes, uniques = _factorize_ids(values, where, "item_id")
    positions = pd.Index(list(known), dtype=object).get_indexer(pd.Index(uniques, dtype=object))
    idx = positions[codes]
    bad = np.flatnonzero(idx < 0)
    if bad.size:
        row = int(bad[0])
        raise InputError(
            f"{where(row)}: item_id {values[row]!r} is not in {known_file} "
            f"({np.unique(codes[bad]).size} unknown item ids in all)"
        )
    return idx.astype(np.int32)


def _read_train_dir(train_dir: Path, duplicates: str) -> _Train:
    """Parse a folder holding train_responses.csv, train_items.csv and optional extras."""
    resp_path = train_dir / TRAIN_RESPONSES
    items_path = train_dir / TRAIN_ITEMS
    meta_path = train_dir / MODEL_METADATA
    emb_path = train_dir / TRAIN_EMBEDDINGS
    _require_file(resp_path)
    items = _read_items(items_path)
    where = _Where(resp_path)
    frame = _read_csv(resp_path, ["model_id", "item_id", "response"])
    model_codes, model_names = _factorize_ids(_strings(frame, "model_id"), where, "model_id")
    item_idx = _map_items(_strings(frame, "item_id"), items.ids, where, items_path)
    response = _binary(frame["response"].to_numpy(dtype=object), where, "response")
    del frame
    model_codes, item_idx, response = _resolve_duplicates(
        model_codes, item_idx, response, len(items.ids), model_names, items.ids, where,
        duplicates,
    )
    metadata = _read_metadata(meta_path) if meta_path.exists() else None
    embeddings = (
        _read_embeddings(emb_path, len(items.ids), items_path) if emb_path.exists() else None
    )
    files = [p for p in (resp_path, items_path, meta_path, emb_path) if p.exists()]
    return _Train(items, model_codes, model_names, item_idx, response, embeddings, metadata,
                  files, str(train_dir))


def _read_long_form(path: Path, duplicates: str) -> _Train:
    """Parse one long-form CSV or Parquet file: model_id,item_id,response[,benchmark[,category]].

    Items are sorted by id; without a benchmark column every item is in benchmark
    ``"default"``; without a category column an item's category is its benchmark.
    """
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        where = _Where(path, "parquet")
        frame = _read_parquet(path)
    else:
        where = _Where(path)
        frame = _read_csv(path, ["model_id", "item_id", "response"], ["benchmark", "category"])
    model_codes, model_names = _factorize_ids(_strings(frame, "model_id"), where, "model_id")
    item_values = _strings(frame, "item_id")
    item_codes, item_names = _factorize_ids(item_values, where, "item_id")
    response = _binary(frame["response"].to_numpy(dtype=object), where, "response")
    order = sorted(range(len(item_names)), key=item_names.__getitem__)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    item_idx = rank[item_codes]
    ids = [item_names[k] for k in order]
    first_row = np.zeros(len(ids), dtype=np.int64)
    first_row[item_idx[::-1]] = np.arange(len(item_idx) - 1, -1, -1)  # last write = first row
    n = len(frame)
    bench_rows = (
        np.array([str(b).strip() for b in _strings(frame, "benchmark")], dtype=object)
        if "benchmark" in frame else np.full(n, DEFAULT_BENCHMARK, dtype=object)
    )
    blank = np.flatnonzero(bench_rows == "")
    if blank.size:
        raise InputError(f"{where(int(blank[0]))}: blank benchmark")
    cat_rows = (
        np.array([str(c).strip() for c in _strings(frame, "category")], dtype=object)
        if "category" in frame else bench_rows
    )
    cat_rows = np.where(cat_rows == "", bench_rows, cat_rows)
    del frame
    # An item must keep one benchmark / category across its rows.
    for rows, column in ((bench_rows, "benchmark"), (cat_rows, "category")):
        per_item = rows[first_row]
        clash = np.flatnonzero(rows != per_item[item_idx])
        if clash.size:
            row = int(clash[0])
            raise InputError(
                f"{where(row)}: item {item_values[row]!r} has {column} {rows[row]!r} here but "
                f"{per_item[item_idx[row]]!r} at {where(int(first_row[item_idx[row]]))}"
            )
    items = _Items(ids, bench_rows[first_row], cat_rows[first_row])
    model_codes, item_idx, response = _resolve_duplicates(
        model_codes, item_idx, response, len(ids), model_names, ids, where, duplicates
    )
    return _Train(items, model_codes, model_names, item_idx, response, None, None, [path],
                  str(path))


def _read_parquet(path: Path) -> pd.DataFrame:
    """Read a long-form Parquet file (pyarrow imported lazily); required columns checked."""
    _require_file(path)
    try:
        frame = pd.read_parquet(path)
    except ImportError as exc:
        raise InputError(f"{path}: reading Parquet needs pyarrow ({exc})") from None
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        raise InputError(f"{path}: cannot read as Parquet ({exc})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    for col in ("model_id", "item_id", "response"):
        if col not in frame.columns:
            raise InputError(f"{path}: missing column {col!r} (columns are {list(frame.columns)})")
    if len(frame) == 0:
        raise InputError(f"{path}: no data rows")
    return frame.reset_index(drop=True)


@dataclass
class _Test:
    """The parsed test side."""

    items: _Items
    pair_models: np.ndarray  # object (n_test,)
    pair_item_pos: np.ndarray  # int32 (n_test,) row of test_items.csv
    embeddings: np.ndarray | None
    emb_path: Path


def _read_test_dir(test_dir: Path) -> _Test:
    """Parse test_items.csv, test_pairs.csv and the optional test_item_embeddings.npy."""
    items_path = test_dir / TEST_ITEMS
    pairs_path = test_dir / TEST_PAIRS
    emb_path = test_dir / TEST_EMBEDDINGS
    items = _read_items(items_path, allow_no_rows=True)
    where = _Where(pairs_path)
    frame = _read_csv(pairs_path, ["model_id", "item_id"], allow_no_rows=True)
    models = _strings(frame, "model_id")
    _factorize_ids(models, where, "model_id")
    pos = _map_items(_strings(frame, "item_id"), items.ids, where, items_path)
    embeddings = (
        _read_embeddings(emb_path, len(items.ids), items_path) if emb_path.exists() else None
    )
    return _Test(items, models, pos, embeddings, emb_path)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def _locate(path: Path, test_dir: str | os.PathLike[str] | None) -> tuple[Path, Path | None]:
    """Work out (training source, test folder) from the arguments of :func:`load`."""
    if path.is_file():
        train = path
    elif path.is_dir():
        if (path / TRAIN_RESPONSES).is_file():
            train = path
        elif (path / "train").is_dir():
            train = path / "train"
            if test_dir is None and (path / "test").is_dir():
                test_dir = path / "test"
        else:
            raise InputError(
                f"{path}: neither a data root (with train/) nor a train folder "
                f"(with {TRAIN_RESPONSES})"
            )
    else:
        raise InputError(f"{path}: no such file or folder")
    if test_dir is None:
        return train, None
    test = Path(test_dir)
    if not test.is_dir():
        raise InputError(f"{test}: test folder not found")
    if not (test / TEST_ITEMS).exists() and (test / "test" / TEST_ITEMS).exists():
        test = test / "test"  # a data root given as test_dir
    return train, test


def load(
    path: str | os.PathLike[str],
    test_dir: str | os.PathLike[str] | None = None,
    *,
    duplicates: str = "error",
) -> IRTData:
    """Read and validate a data set into :class:`IRTData`.

    Parameters
    ----------
    path : path-like
        One of: a data root holding ``train/`` (and optionally ``test/``); a train folder
        holding ``train_responses.csv``; or a single long-form ``.csv`` / ``.parquet`` file
        with columns ``model_id,item_id,response[,benchmark[,category]]`` (no benchmark
        column: one benchmark ``"default"``; no category: the benchmark name).
    test_dir : path-like, optional
        Folder with ``test_items.csv`` and ``test_pairs.csv`` (and optionally
        ``test_item_embeddings.npy``). Defaults to ``root/test`` when ``path`` is a data root
        that has one; otherwise no test side is read.
    duplicates : {"error", "mean"}
        What to do with repeated (model_id, item_id) rows: ``"error"`` raises; ``"mean"``
        keeps one row per pair (where it first appears) with the majority response, and
        raises on a tie (as many 0s as 1s).

    Returns
    -------
    IRTData
        Training models sorted, then test-only models (sorted); training items in file
        order, then new test items; observations in file order.

    Raises
    ------
    ValueError
        One line naming file, line and value, for: missing file or column, empty file,
        response not 0/1, duplicate (model, item) rows, an item not in train_items.csv,
        duplicate item ids, non-UTF-8 text, malformed CSV, bad param_count / is_instruct,
        embeddings with the wrong row count, dtype or dimension, a test pair whose item is
        not in test_items.csv, an unknown ``duplicates`` value.

    Warns
    -----
    DataWarning
        A test pair's model has no training responses (it is appended to ``model_ids``
        after ``n_train_models``); an item is in both train and test items (it keeps its
        training index); embeddings exist on one side only (both are dropped).
    """
    if duplicates not in ("error", "mean"):
        raise InputError(f"duplicates={duplicates!r}; expected 'error' or 'mean'")
    train_src, test_src = _locate(Path(path), test_dir)
    if train_src.is_file():
        train = _read_long_form(train_src, duplicates)
    else:
        train = _read_train_dir(train_src, duplicates)
    test = _read_test_dir(test_src) if test_src is not None else None
    train.source = str(path)
    return _assemble(train, test, fingerprint_files(train.files))


def _assemble(train: _Train, test: _Test | None, fingerprint: str) -> IRTData:
    """Merge the parsed training and test sides into the final index space."""
    # Training models sorted, so indices do not depend on the row order of the file.
    order = sorted(range(len(train.model_names)), key=train.model_names.__getitem__)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    model_ids = [train.model_names[k] for k in order]
    model_idx = rank[train.model_codes]
    n_train_models = len(model_ids)

    item_ids = list(train.items.ids)
    n_train_items = len(item_ids)
    bench_names = list(train.items.benchmark)
    cat_names = list(train.items.category)
    embeddings = train.embeddings
    test_model_idx = test_item_idx = None

    if test is not None:
        train_pos = pd.Index(item_ids, dtype=object)
        in_train = train_pos.get_indexer(pd.Index(test.items.ids, dtype=object))
        overlap = np.flatnonzero(in_train >= 0)
        if overlap.size:
            warnings.warn(
                f"{overlap.size} item(s) of {TEST_ITEMS} also appear in {TRAIN_ITEMS} "
                f"(first: {test.items.ids[overlap[0]]!r}); they keep their training index",
                DataWarning,
                stacklevel=3,
            )
        new = np.flatnonzero(in_train < 0)
        # final index of each test_items.csv row
        final = in_train.copy()
        final[new] = n_train_items + np.arange(new.size)
        item_ids += [test.items.ids[k] for k in new]
        bench_names += [test.items.benchmark[k] for k in new]
        cat_names += [test.items.category[k] for k in new]
        test_item_idx = final[test.pair_item_pos].astype(np.int32)

        codes, uniques = pd.factorize(test.pair_models)
        known = pd.Index(model_ids, dtype=object).get_indexer(pd.Index(uniques, dtype=object))
        unknown = sorted(str(uniques[k]) for k in np.flatnonzero(known < 0))
        if unknown:
            warnings.warn(
                f"{len(unknown)} model(s) in {TEST_PAIRS} have no training responses "
                f"(e.g. {unknown[:3]}); they are appended after the {n_train_models} "
                "training models",
                DataWarning,
                stacklevel=3,
            )
            model_ids += unknown
            known = pd.Index(model_ids, dtype=object).get_indexer(pd.Index(uniques, dtype=object))
        test_model_idx = known[codes].astype(np.int32)

        if embeddings is not None and test.embeddings is not None:
            if embeddings.shape[1] != test.embeddings.shape[1]:
                raise InputError(
                    f"{test.emb_path}: embedding dim {test.embeddings.shape[1]} differs from "
                    f"the training embeddings' {embeddings.shape[1]}"
                )
            embeddings = np.concatenate([embeddings, test.embeddings[new]], axis=0)
        elif embeddings is not None or test.embeddings is not None:
            side = "training" if embeddings is not None else "test"
            warnings.warn(
                f"only the {side} items have embeddings; embeddings are ignored",
                DataWarning,
                stacklevel=3,
            )
            embeddings = None

    benchmark_ids = sorted(set(bench_names))
    bench_index = {b: k for k, b in enumerate(benchmark_ids)}
    full_cats = [f"{b}/{c}" for b, c in zip(bench_names, cat_names, strict=True)]
    category_ids = sorted(set(full_cats))
    cat_index = {c: k for k, c in enumerate(category_ids)}
    cat_bench_of = dict(zip(full_cats, bench_names, strict=True))
    item_benchmark = np.array([bench_index[b] for b in bench_names], dtype=np.int32)
    item_category = np.array([cat_index[c] for c in full_cats], dtype=np.int32)
    category_benchmark = np.array([bench_index[cat_bench_of[c]] for c in category_ids],
                                  dtype=np.int32)

    params = np.full(len(model_ids), np.nan)
    instruct = np.full(len(model_ids), np.nan)
    released = np.full(len(model_ids), np.nan)
    org = [""] * len(model_ids)
    if train.metadata is not None:
        rows = train.metadata.index.get_indexer(pd.Index(model_ids, dtype=object))
        hit = np.flatnonzero(rows >= 0)
        params[hit] = train.metadata["param_count"].to_numpy()[rows[hit]]
        instruct[hit] = train.metadata["is_instruct"].to_numpy()[rows[hit]]
        released[hit] = train.metadata["release_year"].to_numpy()[rows[hit]]
        orgs = train.metadata["org"].to_numpy(dtype=object)
        for i in hit:
            org[i] = str(orgs[rows[i]])

    return IRTData(
        model_ids=tuple(model_ids),
        item_ids=tuple(item_ids),
        benchmark_ids=tuple(benchmark_ids),
        category_ids=tuple(category_ids),
        model_idx=model_idx,
        item_idx=train.item_idx,
        response=train.response,
        item_benchmark=item_benchmark,
        item_category=item_category,
        category_benchmark=category_benchmark,
        n_train_items=n_train_items,
        n_train_models=n_train_models,
        item_embeddings=embeddings,
        model_param_count=params,
        model_org=tuple(org),
        model_is_instruct=instruct,
        model_release_year=released,
        test_model_idx=test_model_idx,
        test_item_idx=test_item_idx,
        fingerprint=fingerprint,
        source=train.source,
    )


def read_item_texts(root: str | os.PathLike[str]) -> dict[str, tuple[str, str]]:
    """Text and category of every item of a data root (train and test items files).

    The streaming coordinator shows items to a submission as the platform does
    (``item_content``); nothing else reads the text.

    Parameters
    ----------
    root : path-like
        A data root with ``train/train_items.csv`` (and optionally ``test/test_items.csv``).

    Returns
    -------
    dict of str to (str, str)
        item_id -> (item_text, category); blank text where the column is absent.

    Raises
    ------
    ValueError
        Missing train items file, missing item_id column, non-UTF-8 text.
    """
    root = Path(root)
    out: dict[str, tuple[str, str]] = {}
    for path in (root / "train" / "train_items.csv", root / "test" / "test_items.csv"):
        if not path.is_file() and path.parent.name == "test":
            continue
        frame = _read_csv(path, ["item_id"], ["item_text", "category"], allow_no_rows=True)
        ids = _strings(frame, "item_id")
        text = _strings(frame, "item_text") if "item_text" in frame else np.full(len(ids), "")
        cat = _strings(frame, "category") if "category" in frame else np.full(len(ids), "")
        for i, t, c in zip(ids.tolist(), text.tolist(), cat.tolist(), strict=True):
            out.setdefault(str(i), ("" if _is_blank(t) else str(t), "" if _is_blank(c) else str(c)))
    return out


def read_pairs(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read a pairs file such as test_pairs.csv (columns model_id,item_id).

    Parameters
    ----------
    path : path-like

    Returns
    -------
    model_ids, item_ids : ndarray of object (str), (n,)
        In file order; a header-only file gives empty arrays.

    Raises
    ------
    ValueError
        Missing or empty file, missing column, blank id, non-UTF-8 text.
    """
    path = Path(path)
    where = _Where(path)
    frame = _read_csv(path, ["model_id", "item_id"], allow_no_rows=True)
    models, items = _strings(frame, "model_id"), _strings(frame, "item_id")
    _factorize_ids(models, where, "model_id")
    _factorize_ids(items, where, "item_id")
    return models, items


def read_labeled_pairs(
    path_or_records: str | os.PathLike[str] | Iterable[Mapping[str, Any]] | pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read revealed (labeled) pairs from a CSV file or from a list of dicts.

    Parameters
    ----------
    path_or_records : path-like, list of dict, or DataFrame
        A CSV with columns ``model_id,item_id`` and a label column, or records (dicts) with
        keys ``model_id``, ``item_id`` and a label key. The label may be named any of
        :data:`LABEL_KEYS` (``response``, ``label``, ``correct``, ``is_correct``, ``y``,
        ``value``; the first present wins). Labels may be 0/1 ints, floats, booleans or the
        strings ``"0"``/``"1"``.

    Returns
    -------
    model_ids, item_ids : ndarray of object (str), (n,)
    labels : ndarray of int8, (n,)
        0 or 1.

    Raises
    ------
    ValueError
        No label key / column (the keys seen are named), a missing model_id / item_id, a
        label that is not 0/1, an unreadable file.
    TypeError
        When a record is not a mapping.
    """
    if isinstance(path_or_records, (str, os.PathLike)):
        path = Path(path_or_records)
        where = _Where(path)
        frame = _read_csv(path, ["model_id", "item_id"], alternatives=LABEL_KEYS,
                          allow_no_rows=True)
        models, items = _strings(frame, "model_id"), _strings(frame, "item_id")
        _factorize_ids(models, where, "model_id")
        _factorize_ids(items, where, "item_id")
        labels = _binary(frame.iloc[:, 2].to_numpy(dtype=object), where, frame.columns[2])
        return models, items, labels
    if isinstance(path_or_records, pd.DataFrame):
        path_or_records = path_or_records.to_dict("records")
    models, items, raw = [], [], []
    for i, record in enumerate(path_or_records):
        if not isinstance(record, Mapping):
            raise TypeError(
                f"labeled pair {i}: expected a dict, got {type(record).__name__}"
            )
        key = next((k for k in LABEL_KEYS if k in record), None)
        missing = [k for k in ("model_id", "item_id") if k not in record]
        if key is None or missing:
            need = missing if missing else [f"one of {list(LABEL_KEYS)}"]
            seen = sorted(map(str, record))
            raise InputError(f"labeled pair {i}: missing {', '.join(need)}; keys seen: {seen}")
        models.append(str(record["model_id"]))
        items.append(str(record["item_id"]))
        raw.append(record[key])
    model_arr = np.array(models, dtype=object)
    item_arr = np.array(items, dtype=object)
    raw_arr = np.empty(len(raw), dtype=object)
    raw_arr[:] = raw
    labels = _binary(raw_arr, lambda row: f"labeled pair {row}", "label")
    return model_arr, item_arr, labels


def without_benchmark(data: IRTData, benchmark: str) -> IRTData:
    """Return the training data with one benchmark removed (items, responses, categories).

    Models left without any response are dropped too. Embeddings and model metadata of the
    kept rows are kept; test items and pairs are not (the result is training data only).

    Parameters
    ----------
    data : IRTData
    benchmark : str
        A benchmark id of ``data``.

    Returns
    -------
    IRTData
        ``fingerprint`` is ``data``'s with ``"-<benchmark>"`` appended, so a fit on it is
        never mistaken for a fit on ``data``.

    Raises
    ------
    InputError
        If ``benchmark`` is not one of ``data``'s, or it is the only one.
    """
    if benchmark not in data.benchmark_ids:
        raise InputError(
            f"{data.source or 'data'}: no benchmark {benchmark!r} (has {list(data.benchmark_ids)})")
    if data.n_benchmarks == 1:
        raise InputError(f"{data.source or 'data'}: {benchmark!r} is its only benchmark")
    gone = data.benchmark_ids.index(benchmark)
    nt = data.n_train_items
    keep = data.item_benchmark[data.item_idx] != gone
    m_used = np.unique(data.model_idx[keep])
    j_used = np.flatnonzero(data.item_benchmark[:nt] != gone)
    b_used = np.array([b for b in range(data.n_benchmarks) if b != gone])
    c_used = np.flatnonzero(data.category_benchmark != gone)
    remap = {}
    for name, used, size in (("m", m_used, data.n_models), ("j", j_used, nt),
                             ("b", b_used, data.n_benchmarks),
                             ("c", c_used, data.n_categories)):
        table = np.full(size, -1, dtype=np.int64)
        table[used] = np.arange(used.size)
        remap[name] = table
    return IRTData(
        model_ids=tuple(data.model_ids[m] for m in m_used),
        item_ids=tuple(data.item_ids[j] for j in j_used),
        benchmark_ids=tuple(data.benchmark_ids[b] for b in b_used),
        category_ids=tuple(data.category_ids[c] for c in c_used),
        model_idx=remap["m"][data.model_idx[keep]],
        item_idx=remap["j"][data.item_idx[keep]],
        response=data.response[keep],
        item_benchmark=remap["b"][data.item_benchmark[j_used]],
        item_category=remap["c"][data.item_category[j_used]],
        category_benchmark=remap["b"][data.category_benchmark[c_used]],
        item_embeddings=None if data.item_embeddings is None else data.item_embeddings[j_used],
        model_param_count=data.model_param_count[m_used],
        model_org=tuple(data.model_org[m] for m in m_used),
        model_is_instruct=data.model_is_instruct[m_used],
        model_release_year=data.model_release_year[m_used],
        fingerprint=f"{data.fingerprint}-{benchmark}",
        source=f"{data.source} without {benchmark}",
    )


def without_models(data: IRTData, model_ids: Iterable[str]) -> IRTData:
    """Return the training data with some models removed entirely (leave-models-out).

    Parameters
    ----------
    data : IRTData
    model_ids : iterable of str
        Models of ``data`` to remove; their responses go, items and benchmarks stay.

    Returns
    -------
    IRTData
        Training data only; ``fingerprint`` gets ``"-without-<n>-models"`` appended.

    Raises
    ------
    InputError
        If an id is not one of ``data``'s models, or no model would be left.
    """
    gone = set(model_ids)
    unknown = sorted(gone - set(data.model_ids))
    if unknown:
        raise InputError(f"{data.source or 'data'}: no model {unknown[0]!r}")
    keep_models = np.asarray([m not in gone for m in data.model_ids[: data.n_train_models]])
    keep = keep_models[data.model_idx]
    if not keep.any():
        raise InputError(f"{data.source or 'data'}: removing {len(gone)} models leaves none")
    m_used = np.unique(data.model_idx[keep])
    remap = np.full(data.n_models, -1, dtype=np.int64)
    remap[m_used] = np.arange(m_used.size)
    nt = data.n_train_items
    return IRTData(
        model_ids=tuple(data.model_ids[m] for m in m_used),
        item_ids=data.item_ids[:nt],
        benchmark_ids=data.benchmark_ids,
        category_ids=data.category_ids,
        model_idx=remap[data.model_idx[keep]],
        item_idx=data.item_idx[keep],
        response=data.response[keep],
        item_benchmark=data.item_benchmark[:nt],
        item_category=data.item_category[:nt],
        category_benchmark=data.category_benchmark,
        item_embeddings=None if data.item_embeddings is None else data.item_embeddings[:nt],
        model_param_count=data.model_param_count[m_used],
        model_org=tuple(data.model_org[m] for m in m_used),
        model_is_instruct=data.model_is_instruct[m_used],
        model_release_year=data.model_release_year[m_used],
        fingerprint=f"{data.fingerprint}-without-{len(gone)}-models",
        source=f"{data.source} without {len(gone)} models",
    )


def bundled_dataset() -> Path:
    """Return the path of the bundled ``real_multibench_small`` data root.

    Returns
    -------
    Path
        A folder with ``train/``, ``test/``, ``reference/`` and ``reveal/``.

    Raises
    ------
    FileNotFoundError
        When the package was installed without its data files.
    """
    root = Path(__file__).resolve().parent / "datasets" / "real_multibench_small"
    if not (root / "train" / TRAIN_RESPONSES).is_file():
        raise FileNotFoundError(f"{root}: bundled data set not found (package data missing?)")
    return root


# --------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------


def summarize(data: IRTData) -> str:
    """Describe a data set in a few readable lines (used by ``bayesirt info``).

    Parameters
    ----------
    data : IRTData

    Returns
    -------
    str
        Multi-line text: counts of models, items (train / test), benchmarks, categories and
        observed cells; overall density (obs / (training models x training items)); a
        per-benchmark table (models seen, train / test items, responses, density over the
        models seen on the benchmark, base rate); test pairs (and how many have models with
        no training responses); the embedding dimension.
    """
    n_test_items = data.n_items - data.n_train_items
    n_test_models = data.n_models - data.n_train_models
    cells = data.n_train_models * data.n_train_items
    density = data.n_obs / cells if cells else float("nan")
    base = float(data.response.mean()) if data.n_obs else float("nan")
    lines = [
        f"data:        {data.source}",
        f"fingerprint: {data.fingerprint[:16] or '-'}",
        f"models:      {data.n_models:,}"
        + (f" ({data.n_train_models:,} with training responses, {n_test_models:,} test-only)"
           if n_test_models else ""),
        f"items:       {data.n_items:,} ({data.n_train_items:,} train / {n_test_items:,} test)",
        f"benchmarks:  {data.n_benchmarks:,}",
        f"categories:  {data.n_categories:,}",
        f"observed:    {data.n_obs:,} training responses; density {density:.3f} "
        f"(obs / (models x train items)); base rate {base:.3f}",
    ]
    if data.test_model_idx is not None:
        unknown = int(np.count_nonzero(data.test_model_idx >= data.n_train_models))
        lines.append(f"test pairs:  {data.n_test:,} ({unknown:,} with models unseen in training)")
    else:
        lines.append("test pairs:  none (no test folder)")
    emb = data.item_embeddings
    lines.append(f"embeddings:  {'none' if emb is None else f'{emb.shape[1]}-d'}")

    obs_bench = data.item_benchmark[data.item_idx]
    items_bench = np.bincount(data.item_benchmark[: data.n_train_items],
                              minlength=data.n_benchmarks)
    test_bench = np.bincount(data.item_benchmark[data.n_train_items:],
                             minlength=data.n_benchmarks)
    obs_count = np.bincount(obs_bench, minlength=data.n_benchmarks)
    ones = np.bincount(obs_bench, weights=data.response.astype(np.float64),
                       minlength=data.n_benchmarks)
    seen = np.zeros((data.n_benchmarks, max(data.n_train_models, 1)), dtype=bool)
    seen[obs_bench, data.model_idx] = True
    models_bench = seen.sum(axis=1)
    width = max([len("benchmark")] + [len(b) for b in data.benchmark_ids])
    lines.append("")
    lines.append(
        f"{'benchmark':<{width}}  {'models':>6}  {'train items':>11}  {'test items':>10}  "
        f"{'responses':>10}  {'density':>7}  {'base rate':>9}"
    )
    for k, name in enumerate(data.benchmark_ids):
        denom = models_bench[k] * items_bench[k]
        dens = f"{obs_count[k] / denom:.3f}" if denom else "-"
        rate = f"{ones[k] / obs_count[k]:.3f}" if obs_count[k] else "-"
        lines.append(
            f"{name:<{width}}  {models_bench[k]:>6,}  {items_bench[k]:>11,}  "
            f"{test_bench[k]:>10,}  {obs_count[k]:>10,}  {dens:>7}  {rate:>9}"
        )
    return "\n".join(lines)
