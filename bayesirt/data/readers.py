"""Items, responses, pairs and embeddings: one reader per file of the layout.

Part of :mod:`bayesirt.data` (see its docstring: what is read, how errors are said, and why
only numpy, pandas and the standard library may be imported).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError  # relative: data/ also ships in the bundle's runtime
from .csvfiles import (
    DEFAULT_BENCHMARK,
    MODEL_METADATA,
    TEST_EMBEDDINGS,
    TEST_ITEMS,
    TEST_PAIRS,
    TRAIN_EMBEDDINGS,
    TRAIN_ITEMS,
    TRAIN_RESPONSES,
    _binary,
    _factorize_ids,
    _read_csv,
    _require_file,
    _strings,
    _Where,
)
from .metadata import _read_metadata


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
