"""Make a competition-style data folder (new items held out per benchmark) from any responses.

The responses are read through :func:`bayesirt.data.load`, the project's one parser; this
module only decides which items become test items and writes the competition layout::

    out/train/train_responses.csv, train_items.csv, model_metadata.csv, item_embeddings.npy
    out/test/test_items.csv, test_pairs.csv, test_item_embeddings.npy
    out/reference/ground_truth.csv
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from bayesirt import data as bdata
from bayesirt.errors import InputError


def _train_dir_of(path: Path) -> Path:
    """Return the folder holding train_responses.csv: ``path`` itself or ``path/train``."""
    if path.is_dir() and (path / "train").is_dir():
        return path / "train"
    return path


def _pick_test_items(data, test_frac: float, seed: int) -> np.ndarray:
    """Mark ``round(test_frac * n_k)`` observed training items per benchmark k as test items.

    At least one item per benchmark is held out when the benchmark has two or more observed
    items, and at least one always stays in training, so every benchmark is seen in both.
    """
    rng = np.random.default_rng(seed)
    n_train = data.n_train_items
    observed = np.zeros(n_train, dtype=bool)
    observed[data.item_idx] = True
    is_test = np.zeros(n_train, dtype=bool)
    bench = data.item_benchmark[:n_train]
    for k in range(data.n_benchmarks):
        cand = np.flatnonzero((bench == k) & observed)
        if cand.size < 2:
            continue
        n_test = min(cand.size - 1, max(1, int(math.floor(test_frac * cand.size + 0.5))))
        is_test[rng.choice(cand, size=n_test, replace=False)] = True
    return is_test


def split_dataset(
    path: str | Path, out_dir: str | Path, *, test_frac: float = 0.15, seed: int = 0
) -> Path:
    """Hold out a fraction of each benchmark's items as NEW test items.

    Parameters
    ----------
    path : str or Path
        Anything :func:`bayesirt.data.load` reads: a data root with ``train/``, a train_dir,
        or a single long-form CSV/Parquet file. Only its training responses are used (an
        existing test split is ignored).
    out_dir : str or Path
        Destination; ``train/``, ``test/`` and ``reference/`` are created inside it. It must
        not already hold a ``train/`` folder.
    test_frac : float, optional
        Fraction of each benchmark's observed items to hold out, in (0, 1).
    seed : int, optional
        Seed of ``numpy.random.default_rng`` choosing the items.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ValueError
        If ``test_frac`` is outside (0, 1), ``out_dir/train`` exists, or no item could be held
        out (every benchmark has fewer than two observed items).

    Notes
    -----
    Test pairs whose model has no response left in training are dropped (the competition
    promises that every test model appears in training); their count is in the returned
    folder's ``reference/split.json``. Item rows (text included) are copied from the source
    ``train_items.csv`` when there is one; a long-form file gets ``item_text`` blank.
    """
    if not (isinstance(test_frac, int | float) and 0.0 < float(test_frac) < 1.0):
        raise InputError(f"test_frac must be in (0, 1), got {test_frac!r}")
    src = _train_dir_of(Path(path))
    out = Path(out_dir)
    if (out / "train").exists():
        raise InputError(f"{out / 'train'} already exists; choose an empty --out folder")
    data = bdata.load(src)
    n_train = data.n_train_items
    is_test = _pick_test_items(data, float(test_frac), int(seed))
    if not is_test.any():
        raise InputError(f"{path}: no benchmark has two or more observed items to split")

    model_ids = np.asarray(data.model_ids, dtype=object)
    item_ids = np.asarray(data.item_ids[:n_train], dtype=object)
    obs_test = is_test[data.item_idx]
    models_left = np.zeros(data.n_models, dtype=bool)
    models_left[data.model_idx[~obs_test]] = True
    keep_pair = obs_test & models_left[data.model_idx]

    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(parents=True, exist_ok=True)
    (out / "reference").mkdir(parents=True, exist_ok=True)

    pd.DataFrame({
        "model_id": model_ids[data.model_idx[~obs_test]],
        "item_id": item_ids[data.item_idx[~obs_test]],
        "response": data.response[~obs_test].astype(np.int64),
    }).to_csv(out / "train" / "train_responses.csv", index=False)
    pairs = pd.DataFrame({
        "model_id": model_ids[data.model_idx[keep_pair]],
        "item_id": item_ids[data.item_idx[keep_pair]],
    })
    pairs.to_csv(out / "test" / "test_pairs.csv", index=False)
    pairs.assign(label=data.response[keep_pair].astype(np.int64)).to_csv(
        out / "reference" / "ground_truth.csv", index=False
    )

    items_csv = src / "train_items.csv" if src.is_dir() else None
    if items_csv is not None and items_csv.is_file():
        # A copy of the source rows (text as written), not a second parser: ids and roles
        # come from bayesirt.data above; dtype=str keeps every field exactly as a string.
        items = pd.read_csv(items_csv, dtype=str, keep_default_na=False)
        pos = {iid: r for r, iid in enumerate(items["item_id"])}
        rows = np.array([pos[i] for i in item_ids], dtype=np.int64)
    else:
        bench_ids = np.asarray(data.benchmark_ids, dtype=object)
        cats = np.asarray(data.category_ids, dtype=object)
        items = pd.DataFrame({
            "item_id": item_ids,
            "item_text": "",
            "benchmark": bench_ids[data.item_benchmark[:n_train]],
            # category ids are "benchmark/category"; the files hold the bare category.
            "category": [c.split("/", 1)[-1] for c in cats[data.item_category[:n_train]]],
        })
        rows = np.arange(n_train)
    quoting = 1  # csv.QUOTE_ALL, as the competition files are written
    items.iloc[rows[~is_test]].to_csv(out / "train" / "train_items.csv", index=False,
                                      quoting=quoting)
    items.iloc[rows[is_test]].to_csv(out / "test" / "test_items.csv", index=False,
                                     quoting=quoting)
    if src.is_dir() and (src / "model_metadata.csv").is_file():
        shutil.copyfile(src / "model_metadata.csv", out / "train" / "model_metadata.csv")
    if data.item_embeddings is not None:
        emb = np.asarray(data.item_embeddings[:n_train], dtype=np.float32)
        np.save(out / "train" / "item_embeddings.npy", emb[~is_test])
        np.save(out / "test" / "test_item_embeddings.npy", emb[is_test])

    (out / "reference" / "split.json").write_text(json.dumps({
        "source": str(path), "test_frac": float(test_frac), "seed": int(seed),
        "n_test_items": int(is_test.sum()), "n_train_items": int((~is_test).sum()),
        "n_test_pairs": int(keep_pair.sum()),
        "n_dropped_pairs_unknown_model": int((obs_test & ~keep_pair).sum()),
    }, indent=2), encoding="utf-8")
    return out
