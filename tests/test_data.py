"""Tests of bayesirt.data: parsing, validation messages, warnings, and the bundled data set."""

from __future__ import annotations

import csv
import hashlib
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesirt import data as bd
from bayesirt.data import DataWarning, IRTData

# A tiny data set: 3 models, 4 training items in 2 benchmarks, 2 test items. The first item
# text spans three physical lines, so data rows and line numbers differ in train_items.csv.
ITEMS = (
    '"item_id","item_text","benchmark","category"\n'
    '"a:1","line one\nline ""two""\nline three","a","x"\n'
    '"a:2","plain","a",""\n'
    '"b:1","t","b","y"\n'
    '"b:2","t","b","y"\n'
)
RESPONSES = (
    "model_id,item_id,response\n"
    "m2,a:1,1\n"
    "m1,a:1,0\n"
    "m1,a:2,1\n"
    "m3,b:1,0\n"
    "m2,b:2,1\n"
)
META = (
    "model_id,org,param_count,is_instruct,release_date\n"
    "m1,Org1,7B,True,\n"
    "m2,,8x7B,no,2024-01-01\n"
    "m3,Org3,,,\n"
)
TEST_ITEMS = (
    '"item_id","item_text","benchmark","category"\n'
    '"a:9","new","a","x"\n'
    '"b:9","new","b","z"\n'
)
PAIRS = "model_id,item_id\nm1,b:9\nm3,a:9\nm2,a:9\n"
DIM = 4


def write_root(
    root: Path,
    *,
    items: str = ITEMS,
    responses: str | bytes = RESPONSES,
    meta: str | None = META,
    test_items: str | None = TEST_ITEMS,
    pairs: str = PAIRS,
    emb: np.ndarray | None | str = "auto",
    test_emb: np.ndarray | None | str = "auto",
) -> Path:
    """Write a data root (train/ and, unless test_items is None, test/) and return it."""
    train = root / "train"
    train.mkdir(parents=True, exist_ok=True)
    (train / "train_items.csv").write_text(items, encoding="utf-8")
    raw = responses.encode("utf-8") if isinstance(responses, str) else responses
    (train / "train_responses.csv").write_bytes(raw)
    if meta is not None:
        (train / "model_metadata.csv").write_text(meta, encoding="utf-8")
    rng = np.random.default_rng(0)
    if isinstance(emb, str):
        emb = rng.normal(size=(4, DIM)).astype(np.float32)
    if emb is not None:
        np.save(train / "item_embeddings.npy", emb)
    if test_items is not None:
        test = root / "test"
        test.mkdir(exist_ok=True)
        (test / "test_items.csv").write_text(test_items, encoding="utf-8")
        (test / "test_pairs.csv").write_text(pairs, encoding="utf-8")
        if isinstance(test_emb, str):
            test_emb = rng.normal(size=(2, DIM)).astype(np.float32)
        if test_emb is not None:
            np.save(test / "test_item_embeddings.npy", test_emb)
    return root


def raises_naming(match_parts: list[str], func, *args, **kwargs) -> str:
    """Call func, expect ValueError, and check the one-line message holds every part."""
    with pytest.raises(ValueError) as info:
        func(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    for part in match_parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


# ---------------------------------------------------------------------------- happy paths


def test_tiny_root_layout(tmp_path):
    d = bd.load(write_root(tmp_path))
    assert d.model_ids == ("m1", "m2", "m3")
    assert d.item_ids == ("a:1", "a:2", "b:1", "b:2", "a:9", "b:9")
    assert (d.n_train_items, d.n_train_models, d.n_obs) == (4, 3, 5)
    assert d.benchmark_ids == ("a", "b")
    # blank category -> the benchmark name
    assert d.category_ids == ("a/a", "a/x", "b/y", "b/z")
    assert [d.category_ids[c] for c in d.item_category] == ["a/x", "a/a", "b/y", "b/y",
                                                            "a/x", "b/z"]
    assert d.category_benchmark.tolist() == [0, 0, 1, 1]
    assert d.item_benchmark.tolist() == [0, 0, 1, 1, 0, 1]
    for name in ("model_idx", "item_idx", "item_benchmark", "item_category", "test_model_idx"):
        assert getattr(d, name).dtype == np.int32
    assert d.response.dtype == np.int8
    assert d.item_embeddings.shape == (6, DIM) and d.item_embeddings.dtype == np.float32
    assert d.test_model_idx.tolist() == [0, 2, 1]
    assert d.test_item_idx.tolist() == [5, 4, 4]
    np.testing.assert_array_equal(d.model_param_count, [7e9, 56e9, np.nan])
    np.testing.assert_array_equal(d.model_is_instruct, [1.0, 0.0, np.nan])
    assert d.model_org == ("Org1", "", "Org3")
    assert d.model_index["m3"] == 2 and d.item_index["b:9"] == 5 and d.benchmark_index["b"] == 1
    with pytest.raises(ValueError, match="read-only"):
        d.response[0] = 1


def test_train_dir_alone_and_explicit_test_dir(tmp_path):
    root = write_root(tmp_path)
    alone = bd.load(root / "train")
    assert alone.test_model_idx is None and alone.n_items == 4
    assert alone.item_embeddings.shape == (4, DIM)
    both = bd.load(root / "train", root / "test")
    assert both.n_items == 6 and both.n_test == 3
    # a data root passed as test_dir is understood too
    assert bd.load(root / "train", root).n_test == 3


def test_bundled_small_set(small_dir):
    assert bd.bundled_dataset() == small_dir.resolve()
    d = bd.load(bd.bundled_dataset())
    assert (d.n_models, d.n_items, d.n_train_items) == (30, 601, 512)
    assert d.n_items - d.n_train_items == 89
    assert d.n_obs == 8844 and d.n_test == 1532 and d.n_obs + d.n_test == 10376
    assert d.n_benchmarks == 5 and d.n_train_models == 30
    assert d.item_embeddings.shape == (601, 384)
    assert np.isfinite(d.model_param_count).sum() > 0
    assert re.fullmatch(r"[0-9a-f]{64}", d.fingerprint)


def test_id_index_round_trip(small_dir):
    d = bd.load(small_dir)
    with open(small_dir / "train" / "train_responses.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == d.n_obs
    models = np.array(d.model_ids, dtype=object)[d.model_idx]
    items = np.array(d.item_ids, dtype=object)[d.item_idx]
    assert models.tolist() == [r["model_id"] for r in rows]
    assert items.tolist() == [r["item_id"] for r in rows]
    assert d.response.tolist() == [int(r["response"]) for r in rows]
    with open(small_dir / "test" / "test_pairs.csv", newline="") as fh:
        pairs = list(csv.DictReader(fh))
    assert [d.model_ids[i] for i in d.test_model_idx] == [p["model_id"] for p in pairs]
    assert [d.item_ids[i] for i in d.test_item_idx] == [p["item_id"] for p in pairs]
    train_items = pd.read_csv(small_dir / "train" / "train_items.csv")["item_id"].tolist()
    test_items = pd.read_csv(small_dir / "test" / "test_items.csv")["item_id"].tolist()
    assert list(d.item_ids) == train_items + test_items
    m, j = d.lookup_pairs([p["model_id"] for p in pairs], [p["item_id"] for p in pairs])
    np.testing.assert_array_equal(m, d.test_model_idx)
    np.testing.assert_array_equal(j, d.test_item_idx)
    with pytest.raises(ValueError, match="unknown item id 'nope'"):
        d.lookup_pairs(["01-ai/yi-34b"], ["nope"])


def test_fingerprint_is_sha256_of_training_files(tmp_path):
    root = write_root(tmp_path)
    train = root / "train"
    names = ["train_responses.csv", "train_items.csv", "model_metadata.csv",
             "item_embeddings.npy"]
    expected = hashlib.sha256(b"".join((train / n).read_bytes() for n in names)).hexdigest()
    assert bd.load(root).fingerprint == expected
    (train / "train_responses.csv").write_text(RESPONSES.replace("m3,b:1,0", "m3,b:1,1"))
    assert bd.load(root).fingerprint != expected


def test_summarize_small(small_dir):
    text = bd.summarize(bd.load(small_dir))
    assert "models:      30" in text
    assert "601 (512 train / 89 test)" in text
    assert "benchmarks:  5" in text
    assert "8,844 training responses" in text
    assert "1,532 (0 with models unseen in training)" in text
    assert "384-d" in text
    for bench in ("bfcl", "cruxeval_o", "gsm8k", "math_l5", "mmlu_pro"):
        assert re.search(rf"^{bench}\s+\d", text, re.MULTILINE)
    # mmlu_pro: 7 models, 171 train items, 30 test items (SOURCE.md)
    assert re.search(r"^mmlu_pro\s+7\s+171\s+30\s", text, re.MULTILINE)


def test_summarize_without_test(tmp_path):
    text = bd.summarize(bd.load(write_root(tmp_path, test_items=None)))
    assert "test pairs:  none" in text
    assert "4 (4 train / 0 test)" in text


# ---------------------------------------------------------------------------- error paths


def test_missing_file(tmp_path):
    root = write_root(tmp_path)
    (root / "train" / "train_items.csv").unlink()
    raises_naming(["train_items.csv", "not found"], bd.load, root)
    raises_naming(["nowhere", "no such file"], bd.load, tmp_path / "nowhere")


def test_missing_test_pairs_file(tmp_path):
    root = write_root(tmp_path)
    (root / "test" / "test_pairs.csv").unlink()
    raises_naming(["test_pairs.csv", "not found"], bd.load, root)


@pytest.mark.parametrize(
    ("fname", "text", "column"),
    [
        ("train_items.csv", '"item_id","item_text","category"\n"a:1","t","x"\n', "benchmark"),
        ("train_responses.csv", "model_id,item_id,correct\nm1,a:1,1\n", "response"),
    ],
)
def test_missing_column(tmp_path, fname, text, column):
    root = write_root(tmp_path)
    (root / "train" / fname).write_text(text)
    raises_naming([fname, "line 1", f"missing column '{column}'"], bd.load, root)


@pytest.mark.parametrize(
    ("value", "shown"),
    [("0.5", "'0.5'"), ("yes", "'yes'"), ("NaN", "'NaN'"), ("", "blank"), ("2", "'2'")],
)
def test_response_not_binary(tmp_path, value, shown):
    text = RESPONSES.replace("m1,a:2,1", f"m1,a:2,{value}")
    root = write_root(tmp_path, responses=text)
    raises_naming(["train_responses.csv", "line 4", shown, "0 or 1"], bd.load, root)


def test_short_row_is_blank_response(tmp_path):
    root = write_root(tmp_path, responses=RESPONSES.replace("m1,a:2,1", "m1,a:2"))
    raises_naming(["train_responses.csv", "line 4", "blank"], bd.load, root)


def test_malformed_csv(tmp_path):
    root = write_root(tmp_path, responses=RESPONSES.replace("m1,a:2,1", "m1,a:2,1,9"))
    raises_naming(["train_responses.csv", "malformed CSV", "line 4"], bd.load, root)


def test_every_row_too_long(tmp_path):
    text = "".join(line + ",x\n" for line in RESPONSES.splitlines()[1:])
    root = write_root(tmp_path, responses="model_id,item_id,response\n" + text)
    raises_naming(["train_responses.csv, line 2", "more fields than the header"], bd.load, root)


def test_duplicate_rows_error(tmp_path):
    root = write_root(tmp_path, responses=RESPONSES + "m1,a:1,0\n")
    raises_naming(["train_responses.csv, line 7", "('m1', 'a:1')", "first at",
                   "line 3", "duplicates='mean'"], bd.load, root)


def test_duplicates_mean_majority(tmp_path):
    root = write_root(tmp_path, responses=RESPONSES + "m1,a:1,1\nm1,a:1,1\nm3,b:1,0\n")
    d = bd.load(root, duplicates="mean")
    assert d.n_obs == 5  # one row per pair, where it first appears
    pairs = {(d.model_ids[m], d.item_ids[j]): int(y)
             for m, j, y in zip(d.model_idx, d.item_idx, d.response, strict=True)}
    assert pairs[("m1", "a:1")] == 1  # 0, 1, 1 -> majority 1
    assert pairs[("m3", "b:1")] == 0
    assert [d.item_ids[j] for j in d.item_idx] == ["a:1", "a:1", "a:2", "b:1", "b:2"]


def test_duplicates_mean_tie_is_error(tmp_path):
    root = write_root(tmp_path, responses=RESPONSES + "m1,a:1,1\n")
    raises_naming(["train_responses.csv, line 3", "tied"], bd.load, root, duplicates="mean")


def test_unknown_duplicates_option(tmp_path):
    raises_naming(["duplicates='first'"], bd.load, write_root(tmp_path), duplicates="first")


def test_empty_file(tmp_path):
    root = write_root(tmp_path, responses="")
    raises_naming(["train_responses.csv", "empty"], bd.load, root)


def test_header_only_responses(tmp_path):
    root = write_root(tmp_path, responses="model_id,item_id,response\n")
    raises_naming(["train_responses.csv", "no data rows"], bd.load, root)


def test_embeddings_wrong_rows(tmp_path):
    root = write_root(tmp_path, emb=np.zeros((3, DIM), dtype=np.float32))
    raises_naming(["item_embeddings.npy", "3 embedding rows", "4 items"], bd.load, root)


def test_embeddings_wrong_dtype(tmp_path):
    root = write_root(tmp_path, emb=np.zeros((4, DIM), dtype=np.int64))
    raises_naming(["item_embeddings.npy", "floating", "int64"], bd.load, root)


def test_embeddings_non_finite(tmp_path):
    emb = np.zeros((4, DIM), dtype=np.float32)
    emb[2, 1] = np.nan
    raises_naming(["item_embeddings.npy", "row 2", "non-finite"], bd.load,
                  write_root(tmp_path, emb=emb))


def test_test_embeddings_wrong_dim(tmp_path):
    root = write_root(tmp_path, test_emb=np.zeros((2, DIM + 1), dtype=np.float32))
    raises_naming(["test_item_embeddings.npy", "dim 5", "4"], bd.load, root)


def test_test_embeddings_wrong_rows(tmp_path):
    root = write_root(tmp_path, test_emb=np.zeros((5, DIM), dtype=np.float32))
    raises_naming(["test_item_embeddings.npy", "5 embedding rows", "test_items.csv"],
                  bd.load, root)


def test_item_not_in_train_items(tmp_path):
    root = write_root(tmp_path, responses=RESPONSES.replace("m3,b:1,0", "m3,c:7,0"))
    raises_naming(["train_responses.csv, line 5", "'c:7'", "train_items.csv"], bd.load, root)


def test_non_utf8(tmp_path):
    raw = RESPONSES.encode("utf-8").replace(b"m3,b:1", b"m\xff3,b:1")
    root = write_root(tmp_path, responses=raw)
    offset = raw.index(b"\xff")
    raises_naming(["train_responses.csv", "line 5", "UTF-8", f"byte offset {offset}"],
                  bd.load, root)


def test_duplicate_item_ids_reports_physical_line(tmp_path):
    # "b:1" again: data row 5, but physical line 8 because item a:1's text spans 3 lines
    root = write_root(tmp_path, items=ITEMS + '"b:1","dup","b","y"\n')
    raises_naming(["train_items.csv, line 8", "duplicate item_id 'b:1'", "line 6"],
                  bd.load, root)


def test_duplicate_test_item_ids(tmp_path):
    root = write_root(tmp_path, test_items=TEST_ITEMS + '"a:9","again","a","x"\n')
    raises_naming(["test_items.csv, line 4", "'a:9'"], bd.load, root)


def test_blank_benchmark(tmp_path):
    root = write_root(tmp_path, items=ITEMS.replace('"plain","a"', '"plain",""'))
    raises_naming(["train_items.csv, line 5", "blank benchmark"], bd.load, root)


def test_test_pair_item_not_in_test_items(tmp_path):
    root = write_root(tmp_path, pairs=PAIRS + "m1,a:1\n")
    raises_naming(["test_pairs.csv, line 5", "'a:1'", "test_items.csv"], bd.load, root)


def test_blank_model_id(tmp_path):
    root = write_root(tmp_path, responses=RESPONSES.replace("m1,a:2,1", ",a:2,1"))
    raises_naming(["train_responses.csv, line 4", "blank model_id"], bd.load, root)


@pytest.mark.parametrize(
    ("column", "old", "new"),
    [("param_count", "8x7B", "seven"), ("is_instruct", "True", "maybe")],
)
def test_bad_metadata(tmp_path, column, old, new):
    root = write_root(tmp_path, meta=META.replace(old, new))
    line = "line 3" if column == "param_count" else "line 2"
    raises_naming(["model_metadata.csv", line, repr(new), column], bd.load, root)


def test_duplicate_metadata_model(tmp_path):
    root = write_root(tmp_path, meta=META + "m1,Other,1B,True,\n")
    raises_naming(["model_metadata.csv, line 5", "duplicate model_id 'm1'"], bd.load, root)


# ---------------------------------------------------------------------------- warnings


def test_unknown_test_model_warns_and_is_appended(tmp_path):
    root = write_root(tmp_path, pairs=PAIRS + "zz-new,b:9\nm0-new,a:9\n")
    with pytest.warns(DataWarning, match="2 model"):
        d = bd.load(root)
    assert d.n_train_models == 3
    assert d.model_ids == ("m1", "m2", "m3", "m0-new", "zz-new")
    assert d.test_model_idx.tolist() == [0, 2, 1, 4, 3]
    assert int(d.model_idx.max()) < d.n_train_models
    assert math.isnan(d.model_param_count[3])
    assert "2 with models unseen in training" in bd.summarize(d)


def test_item_in_train_and_test_warns_and_keeps_training_index(tmp_path):
    test_items = TEST_ITEMS + '"b:2","dup of train","b","y"\n'
    emb_test = np.arange(3 * DIM, dtype=np.float32).reshape(3, DIM)
    root = write_root(tmp_path, test_items=test_items, pairs=PAIRS + "m1,b:2\n",
                      test_emb=emb_test)
    with pytest.warns(DataWarning, match="keep their training index"):
        d = bd.load(root)
    assert d.item_ids == ("a:1", "a:2", "b:1", "b:2", "a:9", "b:9")
    assert d.test_item_idx.tolist() == [5, 4, 4, 3]
    # the overlapping test row's embedding is dropped, the training one kept
    np.testing.assert_array_equal(d.item_embeddings[4:], emb_test[:2])


def test_embeddings_on_one_side_only_warn(tmp_path):
    root = write_root(tmp_path, test_emb=None)
    with pytest.warns(DataWarning, match="only the training items have embeddings"):
        d = bd.load(root)
    assert d.item_embeddings is None


# ---------------------------------------------------------------------------- metadata parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7B", 7e9), ("7b", 7e9), ("1.5T", 1.5e12), ("350M", 3.5e8), ("8x7B", 56e9),
        ("8x22B", 176e9), ("34000000000", 34e9), ("3.4e10", 3.4e10), ("125K", 1.25e5),
        (" 13 B ", 13e9), (7_000_000_000, 7e9), (1.5e9, 1.5e9),
    ],
)
def test_parse_param_count(text, expected):
    assert bd.parse_param_count(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "  ", None, float("nan"), "unknown", "NaN"])
def test_parse_param_count_missing(text):
    assert math.isnan(bd.parse_param_count(text))


@pytest.mark.parametrize("text", ["seven", "7Q", "-7B", "inf", "7B7"])
def test_parse_param_count_bad(text):
    with pytest.raises(ValueError, match="param_count"):
        bd.parse_param_count(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("True", 1.0), ("false", 0.0), ("1", 1.0), ("0", 0.0), ("yes", 1.0), ("NO", 0.0),
     (True, 1.0), (0, 0.0)],
)
def test_parse_is_instruct(text, expected):
    assert bd.parse_is_instruct(text) == expected


def test_parse_is_instruct_blank_and_bad():
    assert math.isnan(bd.parse_is_instruct(""))
    with pytest.raises(ValueError, match="is_instruct 'maybe'"):
        bd.parse_is_instruct("maybe")


# ---------------------------------------------------------------------------- long form


LONG = "model_id,item_id,response,benchmark\nm2,q:2,1,b\nm1,q:1,0,a\nm1,q:2,0,b\nm2,q:1,1,a\n"


def test_long_form_csv(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text(LONG)
    d = bd.load(path)
    assert d.item_ids == ("q:1", "q:2") and d.model_ids == ("m1", "m2")
    assert d.benchmark_ids == ("a", "b") and d.category_ids == ("a/a", "b/b")
    assert d.item_benchmark.tolist() == [0, 1]
    assert d.model_idx.tolist() == [1, 0, 0, 1]
    assert d.item_idx.tolist() == [1, 0, 1, 0]
    assert d.response.tolist() == [1, 0, 0, 1]
    assert d.item_embeddings is None and d.test_model_idx is None
    assert d.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


def test_long_form_without_benchmark(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("model_id,item_id,response\nm1,x,1\nm2,x,0\n")
    d = bd.load(path)
    assert d.benchmark_ids == ("default",) and d.category_ids == ("default/default",)


def test_long_form_inconsistent_benchmark(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text(LONG.replace("m1,q:2,0,b", "m1,q:2,0,a"))
    raises_naming(["long.csv, line 4", "'q:2'", "benchmark 'a'", "line 2"], bd.load, path)


def test_long_form_with_test_dir(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text(LONG)
    test = tmp_path / "test"
    test.mkdir()
    (test / "test_items.csv").write_text('item_id,item_text,benchmark,category\nq:9,t,b,\n')
    (test / "test_pairs.csv").write_text("model_id,item_id\nm1,q:9\n")
    d = bd.load(path, test)
    assert d.item_ids == ("q:1", "q:2", "q:9") and d.test_item_idx.tolist() == [2]


def test_long_form_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    frame = pd.read_csv(pd.io.common.StringIO(LONG))
    path = tmp_path / "long.parquet"
    frame.to_parquet(path)
    d = bd.load(path)
    assert d.item_ids == ("q:1", "q:2") and d.response.tolist() == [1, 0, 0, 1]
    frame.loc[2, "response"] = 3
    frame.to_parquet(path)
    raises_naming(["long.parquet, row 3", "0 or 1", "3"], bd.load, path)


# ---------------------------------------------------------------------------- pairs helpers


def test_read_pairs(small_dir):
    models, items = bd.read_pairs(small_dir / "test" / "test_pairs.csv")
    assert models.shape == items.shape == (1532,)
    assert models[0] == "01-ai/yi-1.5-34b-chat" and items[0] == "cruxeval_o:crux-test-#124"


def test_read_labeled_pairs_csv(small_dir, tmp_path):
    models, items, labels = bd.read_labeled_pairs(small_dir / "reference" / "ground_truth.csv")
    assert labels.dtype == np.int8 and labels.shape == (1532,)
    truth = pd.read_csv(small_dir / "reference" / "ground_truth.csv")
    assert labels.tolist() == truth["label"].tolist()
    assert items.tolist() == truth["item_id"].tolist()
    _, _, k3 = bd.read_labeled_pairs(small_dir / "reveal" / "k3_revealed.csv")
    assert k3.shape == (267,)
    empty = bd.read_labeled_pairs(small_dir / "reveal" / "k0_revealed.csv")
    assert [a.shape for a in empty] == [(0,), (0,), (0,)]
    bad = tmp_path / "bad.csv"
    bad.write_text("model_id,item_id,score\nm,i,1\n")
    raises_naming(["bad.csv", "no label column", "score", "response"], bd.read_labeled_pairs, bad)
    bad.write_text("model_id,item_id,label\nm,i,1\nm,j,0.5\n")
    raises_naming(["bad.csv, line 3", "'0.5'"], bd.read_labeled_pairs, bad)


@pytest.mark.parametrize("key", ["response", "label", "correct", "is_correct", "y", "value"])
def test_read_labeled_pairs_record_aliases(key):
    records = [{"model_id": "m1", "item_id": "i1", key: 1},
               {"model_id": "m2", "item_id": "i1", key: "0"},
               {"model_id": "m2", "item_id": "i2", key: True}]
    models, items, labels = bd.read_labeled_pairs(records)
    assert models.tolist() == ["m1", "m2", "m2"] and items.tolist() == ["i1", "i1", "i2"]
    assert labels.tolist() == [1, 0, 1] and labels.dtype == np.int8


def test_read_labeled_pairs_unknown_key():
    records = [{"model_id": "m1", "item_id": "i1", "score": 1}]
    raises_naming(["labeled pair 0", "keys seen", "'score'", "'item_id'", "response"],
                  bd.read_labeled_pairs, records)


def test_read_labeled_pairs_bad_value_and_empty():
    raises_naming(["labeled pair 1", "0.5"], bd.read_labeled_pairs,
                  [{"model_id": "m", "item_id": "i", "y": 0},
                   {"model_id": "m", "item_id": "j", "y": 0.5}])
    models, items, labels = bd.read_labeled_pairs([])
    assert models.shape == items.shape == labels.shape == (0,)
    with pytest.raises(TypeError, match="expected a dict"):
        bd.read_labeled_pairs([("m", "i", 1)])


# ---------------------------------------------------------------------------- the container


def test_irtdata_direct_construction_validates():
    kwargs = dict(
        model_ids=["m1", "m2"], item_ids=["i1"], benchmark_ids=["b"], category_ids=["b/b"],
        model_idx=[0, 1], item_idx=[0, 0], response=[1, 0], item_benchmark=[0],
        item_category=[0], category_benchmark=[0],
    )
    d = IRTData(**kwargs)
    assert d.n_train_models == 2 and d.model_org == ("", "")
    assert np.isnan(d.model_param_count).all() and d.model_idx.dtype == np.int32
    with pytest.raises(ValueError, match=r"model_idx\[1\] = 2"):
        IRTData(**{**kwargs, "model_idx": [0, 2]})
    with pytest.raises(ValueError, match="not 0 or 1"):
        IRTData(**{**kwargs, "response": [1, 2]})
    with pytest.raises(TypeError, match="integers"):
        IRTData(**{**kwargs, "item_idx": [0.0, 0.0]})
