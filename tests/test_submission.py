"""Tests of the submission bundle, the local evaluation harness, splits and safe extraction."""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bayesirt.submission import (
    SubmissionError,
    SubmissionWarning,
    UnsafeArchiveError,
    evaluate,
    safe_extract,
    scoring,
    split_dataset,
)
from bayesirt.submission.runner import n_to_reveal

# ---------------------------------------------------------------------------------------------
# helpers


def make_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return path


# A stand-in submission: stdlib only, per-model accuracy from train_dir, revealed labels used
# verbatim, and a labeling.py whose scores make the first pairs the top ones.
DUMMY_MODEL = '''
import csv, os
_STATE = {}

def train(train_dir):
    acc = {}
    with open(os.path.join(train_dir, "train_responses.csv"), newline="") as fh:
        for row in csv.DictReader(fh):
            s, n = acc.get(row["model_id"], (0, 0))
            acc[row["model_id"]] = (s + int(row["response"]), n + 1)
    _STATE["acc"] = {m: (s + 1) / (n + 2) for m, (s, n) in acc.items()}

def predict(train_dir, test_dir, labeled_pairs):
    known = {(d["model_id"], d["item_id"]): d["label"] for d in labeled_pairs}
    out = []
    with open(os.path.join(test_dir, "test_pairs.csv"), newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["model_id"], row["item_id"])
            p = known[key] if key in known else _STATE["acc"][row["model_id"]]
            out.append({"model_id": key[0], "item_id": key[1], "predicted_probability": p})
    return PATCH(out)

PATCH = lambda out: out
'''
DUMMY_LABELING = '''
def score_pairs(test_pairs, train_dir="", test_dir=""):
    return [-float(i) for i in range(len(test_pairs))]
'''


def dummy_zip(tmp_path: Path, patch: str = "", name: str = "dummy.zip") -> Path:
    model = DUMMY_MODEL + ("\n" + patch if patch else "")
    return make_zip(tmp_path / name, {"model.py": model, "labeling.py": DUMMY_LABELING})


# ---------------------------------------------------------------------------------------------
# safe_extract


def test_safe_extract_good_archive(tmp_path):
    z = make_zip(tmp_path / "ok.zip", {"model.py": "x = 1\n", "pkg/mod.py": "y = 2\n"})
    dest = safe_extract(z, tmp_path / "out")
    assert (dest / "model.py").read_text() == "x = 1\n"
    assert (dest / "pkg" / "mod.py").read_text() == "y = 2\n"


@pytest.mark.parametrize(
    ("entry", "needle"),
    [("../evil.py", "'..'"), ("a/../../evil.py", "'..'"), ("/tmp/evil.py", "absolute"),
     ("C:/evil.py", "absolute"), ("..\\evil.py", "'..'")],
)
def test_safe_extract_refuses_escaping_names(tmp_path, entry, needle):
    z = make_zip(tmp_path / "bad.zip", {"model.py": "x = 1\n", entry: "boom\n"})
    dest = tmp_path / "sandbox" / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UnsafeArchiveError, match=needle):
        safe_extract(z, dest)
    # Nothing was written at all: checks run before the destination is even created.
    assert not (tmp_path / "sandbox").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_safe_extract_refuses_symlink(tmp_path):
    z = tmp_path / "link.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("model.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out" / "model.py").exists()


def test_safe_extract_refuses_bomb(tmp_path):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.bin", b"\0" * 200_000)
    assert z.stat().st_size < 10_000  # compresses well: the declared size is what counts
    with pytest.raises(UnsafeArchiveError, match="100,000 bytes"):
        safe_extract(z, tmp_path / "out", max_bytes=100_000)
    assert not (tmp_path / "out" / "big.bin").exists()


def test_safe_extract_not_a_zip(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_text("not a zip")
    with pytest.raises(UnsafeArchiveError, match="not a ZIP"):
        safe_extract(bad, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="not found"):
        safe_extract(tmp_path / "missing.zip", tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# scoring


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300), 1)  # many ties
    pos, neg = p[y == 1], p[y == 0]
    diff = pos[:, None] - neg[None, :]
    brute = ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / (pos.size * neg.size)
    assert scoring.roc_auc(y, p) == pytest.approx(brute, abs=1e-12)
    assert math.isnan(scoring.roc_auc(np.ones(5, int), np.linspace(0, 1, 5)))


def test_log_loss_brier_ece_values():
    y = np.array([1, 0, 1, 0])
    p = np.array([1.0, 0.0, 0.5, 0.5])
    # Exact 0/1 predictions that are right cost ~1e-7 each; the 0.5s cost log 2.
    assert scoring.log_loss(y, p) == pytest.approx(2 * math.log(2) / 4, abs=1e-6)
    # A confidently wrong prediction is clipped at 1e-7, not infinite.
    assert scoring.log_loss(np.array([1]), np.array([0.0])) == pytest.approx(-math.log(1e-7))
    assert scoring.brier(y, p) == pytest.approx(0.125)
    # Bins: p=0 -> bin 0 (|0-0|), p=0.5 -> bin 5 (|1.0-1|/4 *2 = 0), p=1 -> bin 9 (0).
    assert scoring.ece(y, p) == pytest.approx(0.0)
    assert scoring.ece(np.array([0, 0]), np.array([0.9, 0.9])) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="0/1"):
        scoring.log_loss(np.array([2]), np.array([0.5]))
    with pytest.raises(ValueError, match="finite"):
        scoring.brier(np.array([1]), np.array([np.nan]))


def test_baselines_shrink_and_fall_back():
    # model 0: 3/3 on bench 0; model 1: nothing on bench 1.
    fm = np.array([0, 0, 0, 1, 1])
    fb = np.array([0, 0, 0, 0, 0])
    fy = np.array([1, 1, 1, 0, 1])
    out = scoring.baselines(fm, fb, fy, np.array([0, 1]), np.array([0, 1]), 2, 2)
    glob = 4 / 5
    bench1 = (0 + 2 * glob) / (0 + 2)  # empty benchmark -> global rate
    assert out["benchmark_rate"][1] == pytest.approx(bench1)
    assert out["model_accuracy"][0] == pytest.approx((3 + 2 * glob) / 5)
    assert out["model_benchmark_accuracy"][1] == pytest.approx(bench1)  # empty cell -> bench
    assert 0 < out["model_benchmark_accuracy"][0] < 1


def test_n_to_reveal_is_ceil_without_float_noise():
    assert n_to_reveal(0.05, 100) == 5
    assert n_to_reveal(0.10, 87_668) == 8_767
    assert n_to_reveal(0.0, 10) == 0
    assert n_to_reveal(1.0, 10) == 10


# ---------------------------------------------------------------------------------------------
# split


def test_split_dataset_holds_out_items_per_benchmark(tmp_path, small_dir):
    from bayesirt import data as bdata

    out = split_dataset(small_dir / "train", tmp_path / "split", test_frac=0.2, seed=3)
    d = bdata.load(out)
    src = bdata.load(small_dir / "train")
    assert d.n_obs + d.test_model_idx.size == src.n_obs
    train_items = set(d.item_ids[: d.n_train_items])
    test_items = set(d.item_ids[d.n_train_items:])
    assert not train_items & test_items
    # About 20% of each benchmark's items, and every benchmark on both sides.
    for k, b in enumerate(d.benchmark_ids):
        n_test = int((d.item_benchmark[d.n_train_items:] == k).sum())
        n_src = int((src.item_benchmark[: src.n_train_items] == src.benchmark_index[b]).sum())
        assert n_test == round(0.2 * n_src)
        assert 0 < n_test < n_src
    gm, gi, gy = bdata.read_labeled_pairs(out / "reference" / "ground_truth.csv")
    truth = {
        (src.model_ids[m], src.item_ids[i]): int(y)
        for m, i, y in zip(src.model_idx, src.item_idx, src.response, strict=True)
    }
    assert all(truth[(m, i)] == y for m, i, y in zip(gm, gi, gy, strict=True))
    assert d.item_embeddings is not None and d.item_embeddings.shape[0] == d.n_items
    # Same seed, same split.
    again = split_dataset(small_dir / "train", tmp_path / "split2", test_frac=0.2, seed=3)
    a = (out / "test" / "test_pairs.csv").read_bytes()
    assert a == (again / "test" / "test_pairs.csv").read_bytes()
    with pytest.raises(ValueError, match="already exists"):
        split_dataset(small_dir / "train", tmp_path / "split", test_frac=0.2)
    with pytest.raises(ValueError, match="test_frac"):
        split_dataset(small_dir / "train", tmp_path / "split3", test_frac=1.5)


# ---------------------------------------------------------------------------------------------
# harness with a stand-in submission (fast: stdlib-only child, current interpreter, -I)


def test_evaluate_dummy_submission(tmp_path, small_dir):
    z = dummy_zip(tmp_path)
    out_json = tmp_path / "report.json"
    rep = evaluate(z, small_dir, budgets=(0, 0.05), policy="both", json_out=out_json,
                   time_limit=120)
    n = 1532
    assert rep.n_test_pairs == n
    assert [(r.policy, r.budget) for r in rep.runs] == [
        ("none", 0.0), ("adaptive", 0.05), ("random", 0.05)]
    k = math.ceil(0.05 * n)
    for r in rep.runs[1:]:
        assert r.n_revealed == k and r.n_scored == n - k
    # The dummy predicts per-model accuracy: its log-loss equals the per-model baseline's
    # up to the different smoothing (it uses +1/+2), so the two are close.
    m0 = rep.runs[0].metrics
    assert abs(m0["submission"]["log_loss"] - m0["per-model accuracy"]["log_loss"]) < 0.01
    assert set(rep.runs[0].per_benchmark) == {"bfcl", "cruxeval_o", "gsm8k", "math_l5",
                                              "mmlu_pro"}
    assert rep.foreign_modules == ()
    text = rep.table()
    assert "per-(model, benchmark) accuracy" in text and "adaptive vs random" in text
    saved = json.loads(out_json.read_text())
    assert saved["runs"][1]["n_revealed"] == k


def test_runner_reveals_top_scores_and_blocks_jax(tmp_path, small_dir):
    # Run the runner directly (python -I, outside the package) to inspect what it revealed.
    from bayesirt.submission.harness import NOT_IN_CONTAINER

    sub = safe_extract(dummy_zip(tmp_path), tmp_path / "sub")
    out = tmp_path / "out"
    out.mkdir()
    runner = tmp_path / "runner.py"
    runner.write_bytes((Path(__file__).parents[1] / "bayesirt/submission/runner.py").read_bytes())
    job = {"submission_dir": str(sub), "train_dir": str(small_dir / "train"),
           "test_dir": str(small_dir / "test"),
           "ground_truth": str(small_dir / "reference" / "ground_truth.csv"),
           "runs": [{"policy": "adaptive", "budget": 0.01}, {"policy": "random", "budget": 0.01}],
           "seed": 7, "out_dir": str(out), "block_imports": list(NOT_IN_CONTAINER)}
    (tmp_path / "job.json").write_text(json.dumps(job))
    proc = subprocess.run([sys.executable, "-I", str(runner), str(tmp_path / "job.json")],
                          cwd=sub, capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    k = math.ceil(0.01 * 1532)
    adaptive = json.loads((out / "run_0.json").read_text())
    assert adaptive["revealed"] == list(range(k))  # scores -i: the first k pairs
    rand = json.loads((out / "run_1.json").read_text())
    expect = sorted(np.random.default_rng(7).choice(1532, size=k, replace=False).tolist())
    assert rand["revealed"] == expect
    summary = json.loads((out / "result.json").read_text())
    assert summary["modules"] == []
    # The revealed labels reached predict(): the dummy returns them verbatim.
    truth = {}
    gt = (small_dir / "reference" / "ground_truth.csv").read_text().splitlines()[1:]
    for line in gt:
        m, i, y = line.rsplit(",", 2)
        truth[(m, i)] = int(y)
    j = adaptive["revealed"][0]
    assert adaptive["p"][j] == truth[(adaptive["model_id"][j], adaptive["item_id"][j])]


def test_evaluate_blocks_packages_the_container_lacks(tmp_path, small_dir):
    z = dummy_zip(tmp_path, patch="import jax")
    with pytest.raises(SubmissionError, match="not available in the competition container"):
        evaluate(z, small_dir, budgets=(0,), policy="random", time_limit=120)
    z2 = dummy_zip(tmp_path, patch="import bayesirt", name="b.zip")
    with pytest.raises(SubmissionError, match="import model.py.*bayesirt"):
        evaluate(z2, small_dir, budgets=(0,), policy="random", time_limit=120)


def test_evaluate_rejects_bad_predictions(tmp_path, small_dir):
    z = dummy_zip(tmp_path, patch="PATCH = lambda out: out[:-1]", name="short.zip")
    with pytest.raises(SubmissionError, match="missing e.g."):
        evaluate(z, small_dir, budgets=(0,), policy="random", time_limit=120)
    z = dummy_zip(tmp_path, patch="PATCH = lambda out: out + out[:1]", name="dup.zip")
    with pytest.raises(SubmissionError, match="twice"):
        evaluate(z, small_dir, budgets=(0,), policy="random", time_limit=120)
    nan = "PATCH = lambda out: [dict(d, predicted_probability=float('nan')) for d in out]"
    with pytest.raises(SubmissionError, match="non-finite"):
        evaluate(dummy_zip(tmp_path, patch=nan, name="nan.zip"), small_dir, budgets=(0,),
                 policy="random", time_limit=120)
    clip = "PATCH = lambda out: [dict(d, predicted_probability=1.5) for d in out[:3]] + out[3:]"
    with pytest.warns(SubmissionWarning, match="3 probabilities outside"):
        rep = evaluate(dummy_zip(tmp_path, patch=clip, name="clip.zip"), small_dir,
                       budgets=(0,), policy="random", time_limit=120)
    assert rep.runs[0].n_clipped == 3


def test_evaluate_time_limit_and_missing_labeling(tmp_path, small_dir):
    slow = "import time\n_train = train\ndef train(d):\n    time.sleep(30)\n"
    with pytest.raises(SubmissionError, match="time limit of 3 s"):
        evaluate(dummy_zip(tmp_path, patch=slow, name="slow.zip"), small_dir, budgets=(0,),
                 policy="random", time_limit=3)
    z = make_zip(tmp_path / "nolab.zip", {"model.py": DUMMY_MODEL})
    with pytest.raises(SubmissionError, match="labeling.py is missing"):
        evaluate(z, small_dir, budgets=(0.05,), policy="adaptive", time_limit=120)
    with pytest.raises(ValueError, match="policy"):
        evaluate(z, small_dir, policy="greedy")
    with pytest.raises(ValueError, match="budget"):
        evaluate(z, small_dir, budgets=(1.5,))


def test_evaluate_refuses_unsafe_zip(tmp_path, small_dir):
    z = make_zip(tmp_path / "evil.zip", {"model.py": DUMMY_MODEL, "../escape.py": "x = 1\n"})
    with pytest.raises(UnsafeArchiveError, match="'..'"):
        evaluate(z, small_dir, budgets=(0,), policy="random")
    assert not (tmp_path / "escape.py").exists()


# ---------------------------------------------------------------------------------------------
# bundle: a synthetic posterior over the bundled small data set (no NUTS: fast and exact)


def _logit(p):
    return np.log(p) - np.log1p(-p)


def synthetic_fit(data, *, chains: int = 2, draws: int = 40, seed: int = 0):
    """A FitResult whose draws jitter around empirical-logit estimates of a 2PL."""
    from bayesirt.inference.result import FitResult

    rng = np.random.default_rng(seed)
    nm, nk, nj = data.n_train_models, data.n_benchmarks, data.n_train_items
    mi, ji, yy = data.model_idx, data.item_idx, data.response.astype(np.float64)
    kb = data.item_benchmark[ji]
    cell = mi * nk + kb
    s_mk = np.bincount(cell, weights=yy, minlength=nm * nk)
    n_mk = np.bincount(cell, minlength=nm * nk)
    ability = _logit((s_mk + 1) / (n_mk + 2)).reshape(nm, nk)
    s_j = np.bincount(ji, weights=yy, minlength=nj)
    n_j = np.bincount(ji, minlength=nj)
    difficulty = -_logit((s_j + 1) / (n_j + 2))
    bench = data.item_benchmark[:nj]
    mu_b = np.array([difficulty[bench == k].mean() for k in range(nk)])
    sd_b = np.array([difficulty[bench == k].std() + 0.1 for k in range(nk)])
    S = (chains, draws)

    def jitter(x, sd):
        return (x + sd * rng.standard_normal((*S, *np.shape(x)))).astype(np.float64)

    posterior = {
        "ability": jitter(ability, 0.2),
        "difficulty": jitter(difficulty, 0.2),
        "log_discrimination": jitter(np.zeros(nj), 0.1),
        "mu_difficulty": jitter(mu_b, 0.05),
        "sigma_difficulty": np.abs(jitter(sd_b, 0.02)),
        "mu_log_discrimination": jitter(np.zeros(nk), 0.02),
        "sigma_log_discrimination": np.abs(jitter(np.full(nk, 0.3), 0.02)),
        "ability_pop_loc": jitter(ability.mean(0), 0.05),
        "ability_pop_scale": np.abs(jitter(ability.std(0) + 0.1, 0.02)),
    }
    dims = {"ability": ("model", "benchmark"), "difficulty": ("item",),
            "log_discrimination": ("item",)}
    for name in ("mu_difficulty", "sigma_difficulty", "mu_log_discrimination",
                 "sigma_log_discrimination", "ability_pop_loc", "ability_pop_scale"):
        dims[name] = ("benchmark",)
    stats = {
        "diverging": np.zeros(S, dtype=bool), "n_steps": np.full(S, 7, dtype=np.int64),
        "tree_depth": np.full(S, 3, dtype=np.int64), "energy": rng.standard_normal(S),
        "acceptance_rate": np.full(S, 0.9), "step_size": np.full(S, 0.1),
        "lp": rng.standard_normal(S),
    }
    coords = {"model": list(data.model_ids[:nm]), "item": list(data.item_ids[:nj]),
              "benchmark": list(data.benchmark_ids), "category": list(data.category_ids)}
    const = {"model_idx": data.model_idx, "item_idx": data.item_idx,
             "item_benchmark": data.item_benchmark[:nj], "item_category": data.item_category[:nj],
             "category_benchmark": data.category_benchmark}
    const_dims = {"model_idx": ("obs",), "item_idx": ("obs",), "item_benchmark": ("item",),
                  "item_category": ("item",), "category_benchmark": ("category",)}
    return FitResult(
        model_name="2pl", posterior=posterior, dims=dims, sample_stats=stats,
        observed={"response": data.response}, coords=coords,
        config={"model": "2pl", "chains": chains, "draws": draws, "synthetic": True},
        provenance={"data_fingerprint": data.fingerprint, "fingerprint": data.fingerprint},
        max_tree_depth=10, constant_data=const, constant_dims=const_dims,
    )


@pytest.fixture(scope="module")
def small_posterior(tmp_path_factory, small_dir) -> Path:
    from bayesirt import data as bdata
    from bayesirt.posteriors import save

    d = bdata.load(small_dir / "train")
    return save(synthetic_fit(d), tmp_path_factory.mktemp("post") / "small.nc")


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory, small_posterior):
    from bayesirt.submission import build_bundle

    return build_bundle(small_posterior, tmp_path_factory.mktemp("zip") / "submission.zip")


def test_bundle_layout_and_manifest(small_bundle, small_dir):
    import bayesirt
    from bayesirt import data as bdata

    info = small_bundle
    assert info.n_draws == 80 and info.size_bytes == info.path.stat().st_size
    pkg = Path(bayesirt.__file__).parent
    runtime = {f"predictive/{f.name}" for f in (pkg / "predictive").glob("*.py")}
    runtime |= {f"data/{f.name}" for f in (pkg / "data").glob("*.py")}
    runtime |= {"errors.py", "features.py"}
    assert len(runtime) >= 12
    with zipfile.ZipFile(info.path) as zf:
        names = set(zf.namelist())
        assert names == {"model.py", "labeling.py", "posterior_flat.nc", "manifest.json",
                         "bayesirt_runtime/__init__.py", "bayesirt_runtime/glue.py",
                         *(f"bayesirt_runtime/{n}" for n in runtime)}
        manifest = json.loads(zf.read("manifest.json"))
        # The runtime is the package's own code, byte for byte (house rule 9), with its hash.
        for name in sorted(runtime):
            data = zf.read(f"bayesirt_runtime/{name}")
            assert data == (pkg / name).read_bytes(), name
            assert manifest["sha256"][f"bayesirt_runtime/{name}"] == hashlib.sha256(
                data).hexdigest(), name
    assert manifest["n_draws"] == 80 and manifest["model_name"] == "2pl"
    assert manifest["bayesirt_version"] == bayesirt.__version__
    assert manifest["fingerprint"] == bdata.load(small_dir / "train").fingerprint
    assert manifest["acquisition"] == "bald" and manifest["config"]["synthetic"] is True
    assert "80 draws" in str(info) and "MB ZIP" in str(info)


def test_bundle_thins_draws_and_validates(small_posterior, tmp_path):
    from bayesirt.submission import build_bundle

    info = build_bundle(small_posterior, tmp_path / "thin.zip", max_draws=10,
                        acquisition="epig")
    assert info.n_draws == 10 and info.manifest["acquisition"] == "epig"
    with pytest.raises(ValueError, match="acquisition"):
        build_bundle(small_posterior, tmp_path / "x.zip", acquisition="greedy")
    with pytest.raises(ValueError, match="max_draws"):
        build_bundle(small_posterior, tmp_path / "x.zip", max_draws="many")
    with pytest.raises(ValueError, match="max_draws"):
        build_bundle(small_posterior, tmp_path / "x.zip", max_draws=0)
    with pytest.raises(FileNotFoundError, match="posterior file not found"):
        build_bundle(tmp_path / "missing.nc", tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()


def test_bundle_predict_options_reach_the_sandbox(small_posterior, small_dir, tmp_path):
    from bayesirt import data as bdata
    from bayesirt import predictive
    from bayesirt.submission import build_bundle

    opts = {"neighbours": True, "item_draws": 8, "n_neighbours": 5}
    info = build_bundle(small_posterior, tmp_path / "nb.zip", predict_options=opts,
                        score_options={"item_draws": 4})
    assert info.manifest["predict_options"] == opts
    preds = tmp_path / "preds"
    evaluate(info.path, small_dir, budgets=(0,), policy="random", time_limit=300,
             predictions_dir=preds)
    run, plain, _ = _package_predictions(small_dir, info.path, tmp_path, preds / "none_0.csv")
    draws = predictive.load_flat(tmp_path / "posterior_flat.nc")
    d = bdata.load(small_dir / "train", small_dir / "test")
    models, items = predictive.inputs.test_pairs(d)
    p = predictive.predict_pairs(draws, list(models), list(items), item_draws=8, n_neighbours=5,
                                 **predictive.inputs.engine_inputs(draws, d, use_neighbours=True))
    got = run["predicted_probability"].to_numpy()
    np.testing.assert_array_equal(got, p)
    assert not np.array_equal(got, plain)  # the options changed something
    with pytest.raises(ValueError, match="unknown predict_pairs option 'bogus'"):
        build_bundle(small_posterior, tmp_path / "x.zip", predict_options={"bogus": 1})
    with pytest.raises(ValueError, match="true/false"):
        build_bundle(small_posterior, tmp_path / "x.zip", score_options={"neighbours": 20})


def test_bundle_from_a_flat_artifact(small_bundle, tmp_path):
    from bayesirt import predictive
    from bayesirt.submission import build_bundle

    with zipfile.ZipFile(small_bundle.path) as zf:
        zf.extract("posterior_flat.nc", tmp_path)
    flat = tmp_path / "posterior_flat.nc"
    same = build_bundle(flat, tmp_path / "same.zip")
    assert same.n_draws == 80 and same.manifest["fingerprint"] == small_bundle.manifest[
        "fingerprint"]
    with zipfile.ZipFile(same.path) as zf:
        assert zf.read("posterior_flat.nc") == flat.read_bytes()  # copied verbatim
    thin = build_bundle(flat, tmp_path / "thin.zip", max_draws=20)
    assert thin.n_draws == 20
    with zipfile.ZipFile(thin.path) as zf:
        zf.extract("posterior_flat.nc", tmp_path / "t")
    got = predictive.load_flat(tmp_path / "t" / "posterior_flat.nc")
    np.testing.assert_array_equal(got.ability, predictive.load_flat(flat).thin(20).ability)


def test_bundle_auto_draws_respect_the_size_target(small_posterior, tmp_path, monkeypatch):
    from bayesirt.submission import build_bundle, builder

    # One draw of the small posterior is 4 bytes x (512 x 2 + 30 x 5 + 6 x 5) = 4,816 bytes.
    monkeypatch.setattr(builder, "AUTO_TARGET_BYTES", 30 * 4_816 + 100)
    info = build_bundle(small_posterior, tmp_path / "auto.zip")
    assert info.n_draws == 30 and info.manifest["max_draws_requested"] == "auto"
    assert info.artifact_bytes < 30 * 4_816 + 150_000  # + ids and constant data (obs indices)


def _package_predictions(small_dir, zip_path, tmp_path, revealed_csv):
    """What the package itself computes: predictive.predict_pairs on the bundle's posterior."""
    import pandas as pd

    from bayesirt import data as bdata
    from bayesirt import predictive

    with zipfile.ZipFile(zip_path) as zf:
        zf.extract("posterior_flat.nc", tmp_path)
    draws = predictive.load_flat(tmp_path / "posterior_flat.nc")
    models, items = bdata.read_pairs(small_dir / "test" / "test_pairs.csv")
    d = bdata.load(small_dir / "train", small_dir / "test")
    new_items = predictive.inputs.new_items(draws, d)
    assert predictive.inputs.evidence(draws, d) is None  # fitted on train: nothing to add
    run = pd.read_csv(revealed_csv, float_precision="round_trip")
    rev = run[run["revealed"] == 1]
    labels = None
    if len(rev):
        labels = (rev["model_id"].to_numpy(object), rev["item_id"].to_numpy(object),
                  rev["label"].to_numpy(np.int8))
    p = predictive.predict_pairs(draws, list(models), list(items), new_items=new_items,
                                 labels=labels)
    scores = predictive.score_pairs(draws, list(models), list(items), new_items=new_items,
                                    method="bald")
    return run, p, scores


def test_bundle_output_equals_package_output(small_bundle, small_posterior, small_dir, tmp_path):
    import pandas as pd

    preds = tmp_path / "preds"
    rep = evaluate(small_bundle.path, small_dir, budgets=(0, 0.05), policy="both",
                   time_limit=300, predictions_dir=preds)
    assert rep.foreign_modules == ()  # bayesirt/jax were blocked in the child and not needed
    assert rep.manifest["n_draws"] == 80
    n = rep.n_test_pairs
    for r in rep.runs:
        assert r.n_scored == n - r.n_revealed
        assert 0.3 < r.metrics["submission"]["log_loss"] < 0.7
    for name in ("none_0.csv", "adaptive_0.05.csv", "random_0.05.csv"):
        run, p, scores = _package_predictions(small_dir, small_bundle.path, tmp_path,
                                              preds / name)
        # Same numbers, to float equality: the bundle runs the package's own code.
        np.testing.assert_array_equal(run["predicted_probability"].to_numpy(), p)
        if name.startswith("adaptive"):
            k = math.ceil(0.05 * n)
            top = np.sort(np.argsort(-scores, kind="stable")[:k])
            np.testing.assert_array_equal(np.flatnonzero(run["revealed"].to_numpy()), top)
    # ... and the same numbers as `bayesirt predict` (pipeline.predict) on the posterior file.
    from bayesirt import pipeline

    for name in ("none_0.csv", "adaptive_0.05.csv"):
        run = pd.read_csv(preds / name, float_precision="round_trip")
        rev = run[run["revealed"] == 1]
        records = [{"model_id": m, "item_id": i, "label": int(y)}
                   for m, i, y in zip(rev["model_id"], rev["item_id"], rev["label"], strict=True)]
        table = pipeline.predict(small_posterior, small_dir / "test", labeled=records or None)
        np.testing.assert_array_equal(run["predicted_probability"].to_numpy(),
                                      table["predicted_probability"])
    # Labels help: revealed pairs make the unrevealed predictions better than none at all.
    assert rep.run("adaptive", 0.05).metrics["submission"]["log_loss"] < \
        rep.runs[0].metrics["submission"]["log_loss"] + 0.02


# ---------------------------------------------------------------------------------------------
# fresh numpy/scipy/pandas-only virtualenvs (needs the package registry; slow)

PY310 = Path("/root/.pyenv/versions/3.10.13/bin/python3.10")
PY313 = Path("/root/.pyenv/versions/3.13.0/bin/python3.13")


def _base_python_312() -> Path:
    return Path(getattr(sys, "_base_executable", sys.executable))


@pytest.fixture(scope="session")
def numpy_only_venv(tmp_path_factory):
    """Factory: base interpreter -> python of a venv holding numpy, scipy, pandas only."""
    made: dict[str, Path] = {}

    def make(base: Path) -> Path:
        if str(base) in made:
            return made[str(base)]
        if not base.exists():
            pytest.skip(f"{base} is not installed")
        root = tmp_path_factory.mktemp(f"venv-{base.name}")
        subprocess.run([str(base), "-m", "venv", str(root / "venv")], check=True)
        py = root / "venv" / "bin" / "python"
        env = dict(os.environ, PIP_CACHE_DIR=str(root / "pip-cache"),
                   PIP_DISABLE_PIP_VERSION_CHECK="1")
        proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy", "scipy", "pandas"],
                              capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"cannot install numpy/scipy/pandas (no package registry?): "
                        f"{proc.stderr[-500:]}")
        made[str(base)] = py
        return py

    return make


@pytest.mark.slow
@pytest.mark.parametrize("base", [pytest.param(None, id="py312"), pytest.param(PY310, id="py310"),
                                  pytest.param(PY313, id="py313")])
def test_bundle_in_fresh_numpy_only_venv(base, numpy_only_venv, small_bundle, small_dir,
                                         tmp_path):
    py = numpy_only_venv(base or _base_python_312())
    probe = subprocess.run(
        [str(py), "-I", "-c", "import importlib.util as u, sys; print(sys.version_info[:2], "
         "[m for m in ('bayesirt', 'jax', 'numpyro', 'arviz', 'xarray', 'netCDF4', 'h5py') "
         "if u.find_spec(m)])"], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert probe.stdout.strip().endswith("[]"), probe.stdout  # nothing but numpy/scipy/pandas
    preds = tmp_path / "preds"
    # strict_imports=False: the venv itself proves the point, nothing is blocked artificially.
    rep = evaluate(small_bundle.path, small_dir, budgets=(0, 0.05), policy="both", python=py,
                   time_limit=600, predictions_dir=preds, strict_imports=False)
    assert rep.foreign_modules == ()
    expect = {PY310: "3.10", PY313: "3.13"}.get(base, "3.12")
    assert rep.python_version.startswith(expect)
    for name in ("none_0.csv", "adaptive_0.05.csv", "random_0.05.csv"):
        run, p, _ = _package_predictions(small_dir, small_bundle.path, tmp_path, preds / name)
        got = run["predicted_probability"].to_numpy()
        if base is None:
            # Same interpreter and (fresh-from-the-registry) numpy: the same numbers exactly,
            # unless the registry's numpy differs from the project's, which rounds differently.
            import numpy

            vers = subprocess.run([str(py), "-c", "import numpy; print(numpy.__version__)"],
                                  capture_output=True, text=True, check=True).stdout.strip()
            if vers == numpy.__version__:
                np.testing.assert_array_equal(got, p)
        np.testing.assert_allclose(got, p, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the sandbox side: clear errors, folding in what the posterior lacks


def _copy_data(small_dir: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(small_dir, dest, ignore=shutil.ignore_patterns("reveal"))
    return dest


def test_bundle_without_artifact_says_what_to_do(small_bundle, small_dir, tmp_path):
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(small_bundle.path) as src, zipfile.ZipFile(broken, "w") as dst:
        for name in src.namelist():
            if name != "posterior_flat.nc":
                dst.writestr(name, src.read(name))
    with pytest.raises(SubmissionError, match="posterior artifact posterior_flat.nc missing "
                                              "from the ZIP.*bayesirt bundle"):
        evaluate(broken, small_dir, budgets=(0,), policy="random", time_limit=120)


def test_bundle_folds_in_models_missing_from_the_posterior(small_bundle, small_dir, tmp_path):
    """A model in train_dir but not in the fit gets its ability from its own responses."""
    import pandas as pd

    data_dir = _copy_data(small_dir, tmp_path / "data")
    clone_of = "01-ai/yi-1.5-34b-chat"
    for rel in ("train/train_responses.csv", "test/test_pairs.csv",
                "reference/ground_truth.csv"):
        df = pd.read_csv(data_dir / rel, dtype=str, keep_default_na=False)
        extra = df[df["model_id"] == clone_of].assign(model_id="clone/model")
        pd.concat([df, extra]).to_csv(data_dir / rel, index=False)
    preds = tmp_path / "preds"
    rep = evaluate(small_bundle.path, data_dir, budgets=(0,), policy="random", time_limit=300,
                   predictions_dir=preds)
    assert rep.n_test_pairs == 1532 + int((pd.read_csv(small_dir / "test/test_pairs.csv")
                                           ["model_id"] == clone_of).sum())
    run = pd.read_csv(preds / "none_0.csv", float_precision="round_trip")
    a = run[run["model_id"] == clone_of].set_index("item_id")["predicted_probability"]
    b = run[run["model_id"] == "clone/model"].set_index("item_id")["predicted_probability"]
    assert len(a) > 20 and len(a) == len(b)
    # Same responses, so nearly the same predictions (the clone's ability is estimated from
    # the population prior + its responses, not fitted jointly: close, not equal).
    assert np.corrcoef(a, b.loc[a.index])[0, 1] > 0.95
    assert np.abs(a - b.loc[a.index]).mean() < 0.08


def test_bundle_refuses_test_model_unknown_everywhere(small_bundle, small_dir, tmp_path):
    import pandas as pd

    data_dir = _copy_data(small_dir, tmp_path / "data")
    for rel in ("test/test_pairs.csv", "reference/ground_truth.csv"):
        df = pd.read_csv(data_dir / rel, dtype=str, keep_default_na=False)
        pd.concat([df, df.iloc[:1].assign(model_id="ghost/model")]).to_csv(data_dir / rel,
                                                                            index=False)
    from bayesirt.data import DataWarning

    # The parent's own parse warns too (a test model without training responses).
    with pytest.warns(DataWarning, match="ghost/model"), \
            pytest.raises(SubmissionError, match="model 'ghost/model' unknown to the artifact "
                                                 "and absent from train_dir"):
        evaluate(small_bundle.path, data_dir, budgets=(0,), policy="random", time_limit=300)


SANDBOX_SCRIPT = r'''
import csv, json, math, sys
train, test = sys.argv[1], sys.argv[2]
import model, labeling
model.train(train)
with open(test + "/test_pairs.csv", newline="") as fh:
    pairs = [{"model_id": r["model_id"], "item_id": r["item_id"]} for r in csv.DictReader(fh)]
out = {}
# The platform may call score_pairs without the folders: items described by their id prefix.
s_bare = labeling.score_pairs(pairs[:60])
s_full = labeling.score_pairs(pairs[:60], train, test)
out["scores_ok"] = len(s_bare) == len(s_full) == 60 and all(
    math.isfinite(x) for x in s_bare + s_full)
# Any documented label key works ...
a = model.predict(train, test, [dict(pairs[0], y=1)])
b = model.predict(train, test, [dict(pairs[0], response=1)])
out["same_for_label_keys"] = a == b
# A label on a new item moves the other models' predictions on that item.
j = next(k for k, p in enumerate(pairs) if k and p["item_id"] == pairs[0]["item_id"])
out["moved"] = a[j]["predicted_probability"] != model.predict(train, test, [])[j][
    "predicted_probability"]
# ... an unknown one is a clear error naming the keys seen.
try:
    model.predict(train, test, [dict(pairs[0], verdict=1)])
    out["bad_key"] = "no error"
except ValueError as exc:
    out["bad_key"] = str(exc)
out["modules"] = sorted(m for m in ("bayesirt", "jax", "xarray") if m in sys.modules)
print(json.dumps(out))
'''


def test_bundle_modules_in_a_bare_interpreter(small_bundle, small_dir, tmp_path):
    sub = safe_extract(small_bundle.path, tmp_path / "sub")
    (tmp_path / "probe.py").write_text(SANDBOX_SCRIPT)
    env = {"PATH": os.environ["PATH"], "TMPDIR": str(tmp_path)}
    env.update({k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")})
    proc = subprocess.run(
        [sys.executable, "-I", "-c",
         f"import sys; sys.path.insert(0, {str(sub)!r}); sys.argv = ['probe'] + sys.argv[1:];"
         f"exec(open({str(tmp_path / 'probe.py')!r}).read())",
         str(small_dir / "train"), str(small_dir / "test")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["scores_ok"] and out["same_for_label_keys"] and out["moved"]
    assert "verdict" in out["bad_key"] and "label" in out["bad_key"]
    assert out["modules"] == []


# ---------------------------------------------------------------------------------------------
# a real NUTS fit of the small set (hier2pl with embeddings and categories): slow


@pytest.fixture(scope="module")
def fitted_small_bundle(tmp_path_factory, small_dir):
    import jax

    from bayesirt import data as bdata
    from bayesirt.inference import FitConfig, fit
    from bayesirt.posteriors import save
    from bayesirt.submission import build_bundle

    d = bdata.load(small_dir)
    cfg = FitConfig(model="hier2pl", chains=2, warmup=150, draws=150, embedding_components=8,
                    progress=False, seed=0).validate()
    # NumPyro's internals need JAX's default promotion rules (see conftest.numpyro_lenient).
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        res = fit(jax.random.key(0), d, cfg)
    root = tmp_path_factory.mktemp("fitted")
    return build_bundle(save(res, root / "post.nc"), root / "submission.zip")


@pytest.mark.slow
def test_fitted_bundle_equals_package_with_embeddings(fitted_small_bundle, small_dir, tmp_path):
    info = fitted_small_bundle
    assert {"embedding_coef", "category_offset"} <= set(info.manifest["posterior_variables"])
    preds = tmp_path / "preds"
    rep = evaluate(info.path, small_dir, budgets=(0, 0.05), policy="both", time_limit=600,
                   predictions_dir=preds)
    # A real fit beats the constant and per-model baselines outright at k = 0.
    m0 = rep.runs[0].metrics
    assert m0["submission"]["log_loss"] < m0["per-model accuracy"]["log_loss"]
    assert m0["submission"]["log_loss"] < m0["benchmark base rate"]["log_loss"]
    for name in ("none_0.csv", "adaptive_0.05.csv", "random_0.05.csv"):
        run, p, _ = _package_predictions(small_dir, info.path, tmp_path, preds / name)
        # Embeddings and categories reach the new items identically through both parsers.
        np.testing.assert_array_equal(run["predicted_probability"].to_numpy(), p)


def test_split_dataset_from_long_form_csv(tmp_path, small_dir):
    import pandas as pd

    from bayesirt import data as bdata

    resp = pd.read_csv(small_dir / "train" / "train_responses.csv")
    resp["benchmark"] = resp["item_id"].str.split(":").str[0]
    resp.to_csv(tmp_path / "long.csv", index=False)
    out = split_dataset(tmp_path / "long.csv", tmp_path / "split", test_frac=0.15, seed=0)
    d = bdata.load(out)
    assert d.n_obs + d.test_model_idx.size == len(resp)
    assert d.item_embeddings is None
    items = pd.read_csv(out / "test" / "test_items.csv", keep_default_na=False)
    assert list(items.columns) == ["item_id", "item_text", "benchmark", "category"]
    assert set(items["benchmark"]) == set(resp["benchmark"])
    assert json.loads((out / "reference" / "split.json").read_text())["n_test_items"] == len(items)
