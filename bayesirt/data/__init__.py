"""The one place raw data files are parsed: CSV / Parquet / ``.npy`` -> validated index arrays.

Everything downstream (models, inference, predictive, submission) sees only :class:`IRTData`:
int32 index arrays, 0/1 int8 responses, and the id <-> index maps. All checks on the raw
files happen here and fail with a one-line :class:`ValueError` naming the file, the line (as
a text editor numbers it, header = line 1) and the offending value.

A package of modules by job: :mod:`.csvfiles` (the file layout, CSV reading with line-exact
errors), :mod:`.container` (:class:`IRTData`), :mod:`.metadata`, :mod:`.readers` (one per
file), :mod:`.loading` (the public entry points), :mod:`.summary`. It is shipped inside the
batch submission ZIP, so it must import with numpy, pandas and the standard library only and
run on Python 3.10 (pyarrow is imported lazily, for Parquet input only).

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

from ..features import parse_release_date  # one date parser for files and streaming subjects
from .container import DataWarning, IRTData
from .csvfiles import (
    DEFAULT_BENCHMARK,
    LABEL_KEYS,
    MODEL_METADATA,
    TEST_EMBEDDINGS,
    TEST_ITEMS,
    TEST_PAIRS,
    TRAIN_EMBEDDINGS,
    TRAIN_ITEMS,
    TRAIN_RESPONSES,
    fingerprint_files,
)
from .loading import (
    bundled_dataset,
    load,
    read_item_texts,
    read_labeled_pairs,
    read_pairs,
    without_benchmark,
    without_models,
)
from .metadata import parse_is_instruct, parse_param_count
from .summary import summarize

__all__ = [
    "DEFAULT_BENCHMARK",
    "LABEL_KEYS",
    "MODEL_METADATA",
    "TEST_EMBEDDINGS",
    "TEST_ITEMS",
    "TEST_PAIRS",
    "TRAIN_EMBEDDINGS",
    "TRAIN_ITEMS",
    "TRAIN_RESPONSES",
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
