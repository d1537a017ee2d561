"""Public entry points: load a data root, read pairs and labels, drop benchmarks or models.

Part of :mod:`bayesirt.data` (see its docstring: what is read, how errors are said, and why
only numpy, pandas and the standard library may be imported).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError  # relative: data/ also ships in the bundle's runtime
from .container import DataWarning, IRTData
from .csvfiles import (
    LABEL_KEYS,
    TEST_ITEMS,
    TEST_PAIRS,
    TRAIN_ITEMS,
    TRAIN_RESPONSES,
    _binary,
    _factorize_ids,
    _is_blank,
    _read_csv,
    _strings,
    _Where,
    fingerprint_files,
)
from .readers import _read_long_form, _read_test_dir, _read_train_dir, _Test, _Train


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


def _model_metadata(data: IRTData, m_used: np.ndarray) -> dict:
    """Restrict the metadata fields of ``data`` to the models ``m_used`` (in that order)."""
    return {
        "model_param_count": data.model_param_count[m_used],
        "model_org": tuple(data.model_org[m] for m in m_used),
        "model_is_instruct": data.model_is_instruct[m_used],
        "model_release_year": data.model_release_year[m_used],
    }


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
        **_model_metadata(data, m_used),
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
        **_model_metadata(data, m_used),
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
    root = Path(__file__).resolve().parents[1] / "datasets" / "real_multibench_small"
    if not (root / "train" / TRAIN_RESPONSES).is_file():
        raise FileNotFoundError(f"{root}: bundled data set not found (package data missing?)")
    return root
