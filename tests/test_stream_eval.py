"""The streaming bundle and the local coordinator that replays the live platform."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bayesirt.errors import InputError
from bayesirt.submission import build_bundle
from bayesirt.submission.archive import archive_problems
from bayesirt.submission.coordinator import StreamingFailure, Workers, make_run, subject_dicts
from bayesirt.submission.heldout import make_task
from bayesirt.submission.safe_zip import safe_extract
from bayesirt.submission.stream_eval import evaluate_streaming

HELD_OUT = "bfcl"


def _logit(p):
    return np.log(p) - np.log1p(-p)


@pytest.fixture(scope="module")
def world_zip(tmp_path_factory, small_dir):
    """A streaming ZIP of a hier2pl-shaped posterior of the small set without bfcl."""
    from bayesirt import data as bdata
    from bayesirt.predictive import PosteriorDraws, save_flat

    d = bdata.without_benchmark(bdata.load(small_dir / "train"), HELD_OUT)
    rng = np.random.default_rng(0)
    S, M, K, J = 64, d.n_models, d.n_benchmarks, d.n_items
    kb = d.item_benchmark[d.item_idx]
    cell = d.model_idx * K + kb
    n = np.bincount(cell, minlength=M * K)
    acc = (np.bincount(cell, weights=d.response, minlength=M * K) + 1) / (n + 2)
    ability = _logit(acc).reshape(M, K)
    ability = (ability - ability.mean(0)) / ability.std(0)
    general = ability.mean(1) / ability.mean(1).std()
    nj = np.bincount(d.item_idx, minlength=J)
    diff = -_logit((np.bincount(d.item_idx, weights=d.response, minlength=J) + 1) / (nj + 2))

    def jit(x, sd=0.05):
        return x + sd * rng.standard_normal((S, *np.shape(x)))

    mu_b = np.array([diff[d.item_benchmark == k].mean() for k in range(K)])
    pop = {"difficulty_loc": 0.0, "difficulty_scale": 1.0, "log_sigma_difficulty_loc": 0.3,
           "log_sigma_difficulty_scale": 0.3, "log_discrimination_loc": 0.2,
           "log_discrimination_scale": 0.3, "log_sigma_log_discrimination_loc": -1.0,
           "log_sigma_log_discrimination_scale": 0.2, "logit_loading_loc": 1.0,
           "logit_loading_scale": 1.0}
    draws = PosteriorDraws.from_arrays(
        model_ids=list(d.model_ids), item_ids=list(d.item_ids), benchmark_ids=list(d.benchmark_ids),
        ability=jit(ability), difficulty=jit(diff), log_discrimination=jit(np.zeros(J)),
        mu_difficulty=jit(mu_b), sigma_difficulty=np.abs(jit(np.ones(K))),
        mu_log_discrimination=jit(np.zeros(K)),
        sigma_log_discrimination=np.abs(jit(np.full(K, .3))),
        ability_pop_loc=jit(np.zeros(K)), ability_pop_scale=np.abs(jit(np.ones(K))),
        item_benchmark=d.item_benchmark, general_ability=jit(general),
        loading=np.clip(jit(np.full(K, 0.8)), 0.05, 0.95),
        **{f"benchmark_pop_{k}": np.full(S, v) for k, v in pop.items()})
    root = tmp_path_factory.mktemp("stream")
    flat = root / "flat.nc"
    save_flat(draws, flat)
    info = build_bundle(flat, root / "stream.zip", protocol="streaming")
    return info


def _run_inputs(small_dir, n_labels=3):
    """Inputs and a shared label list as the coordinator builds them (5 pairs of bfcl)."""
    from bayesirt import data as bdata
    from bayesirt.submission.heldout_run import benchmark_responses

    data = bdata.load(small_dir)
    m, i, y = benchmark_responses(data, small_dir, HELD_OUT)
    run = make_run(make_task(m, i, y, HELD_OUT, seed=0), subject_dicts(data),
                   bdata.read_item_texts(small_dir), 5)
    labeled = [[[run.subjects[p], it], int(v)] for p, (items, ys) in enumerate(run.acquire)
               for it, v in zip(items[:n_labels], ys[:n_labels], strict=True)]
    inputs = [[run.subjects[p], it] for p, (items, _) in enumerate(run.evaluate)
              for it in items[:6]]
    return inputs, labeled


def test_streaming_bundle_layout(world_zip):
    with zipfile.ZipFile(world_zip.path) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    assert {"model.py", "labeling.py", "posterior_flat.nc", "manifest.json",
            "bayesirt_runtime/stream_glue.py", "bayesirt_runtime/predictive/streaming.py",
            "bayesirt_runtime/features.py"} <= names
    # No file parser (data/ needs pandas) and no batch glue in a streaming bundle.
    assert not any(n.startswith("bayesirt_runtime/data/") for n in names)
    assert "bayesirt_runtime/glue.py" not in names
    assert manifest["protocol"] == "streaming" and manifest["acquisition"] == "random"
    assert manifest["requires"].endswith("numpy, scipy")
    assert archive_problems(world_zip.path) == []
    assert "--protocol streaming" in str(world_zip)


def test_workers_are_pure_and_equal_the_package(world_zip, small_dir, tmp_path):
    from bayesirt.predictive import load_flat
    from bayesirt.predictive.streaming import StreamingPredictor

    sub = safe_extract(world_zip.path, tmp_path / "sub")
    inputs, labeled = _run_inputs(small_dir)
    one = Workers(sub, sys.executable, workers=1)
    four = Workers(sub, sys.executable, workers=4)
    try:
        p1 = one.predict(inputs, labeled)
        p4 = four.predict(inputs, labeled)
        rev = one.predict(inputs[::-1], labeled[::-1])[::-1]
    finally:
        one.close()
        four.close()
    assert p1 == p4 == rev
    sp = StreamingPredictor(load_flat(sub / "posterior_flat.nc"))
    assert [sp.predict(x, labeled) for x in inputs] == p1
    assert len(set(np.round(p1, 6))) > 3  # not a constant


def test_coordinator_runs_the_platform_and_scores(world_zip, small_dir, tmp_path):
    res = evaluate_streaming(world_zip.path, small_dir, tmp_path / "out", pairs=5, seeds=[0],
                             echo=lambda s: None)
    recs = res["records"]
    assert {r["benchmark"] for r in recs} == {HELD_OUT}  # the one benchmark it lacks
    assert {r["predictor"] for r in recs} == {"bayesirt", "empirical_mean", "smoothed_mean"}
    by = {(r["predictor"], r["budget"]): r for r in recs}
    assert [by["bayesirt", b]["n_labels"] for b in (0, 1, 3)] == [0, 5, 15]
    assert by["empirical_mean", 0]["brier"] == pytest.approx(0.25)
    assert by["bayesirt", 31]["brier"] < by["bayesirt", 0]["brier"]
    assert all(0 <= r["ece"] <= 1 for r in recs)
    for key in ("table_path", "plot_path", "records_path"):
        assert Path(res[key]).is_file()
    assert "bayesirt ALC" in res["table"] and res["timing"]["call_ms_median"] > 0
    with pytest.raises(InputError, match="its posterior was fitted on 'gsm8k'"):
        evaluate_streaming(world_zip.path, small_dir, tmp_path / "x", benchmarks=["gsm8k"])
    assert not (tmp_path / "x").exists()


def _tiny(tmp_path, name, model_src, labeling_src=None):
    d = tmp_path / name
    d.mkdir()
    (d / "model.py").write_text(model_src)
    if labeling_src:
        (d / "labeling.py").write_text(labeling_src)
    return d


@pytest.mark.parametrize(("src", "code", "message"), [
    ("def predict(input, labeled):\n    raise KeyError('benchmark_id')\n", 40,
     "predict .target 0. raised KeyError"),
    ("import time\ndef predict(input, labeled):\n    time.sleep(3)\n    return 0.5\n", 41,
     "per-call limit of 0.5 s"),
    ("def predict(input, labeled):\n    return 1.5\n", 42, "not a finite probability"),
    ("def predict(input, labeled):\n    return 'abc'\n", 42, "float.. fails"),
])
def test_failures_carry_the_platforms_exit_codes(tmp_path, src, code, message):
    w = Workers(_tiny(tmp_path, "bad", src), sys.executable, per_call_timeout=0.5)
    try:
        with pytest.raises(StreamingFailure, match=message) as err:
            w.predict([[{"normalized_name": "m"}, {"benchmark_id": "b"}]], [])
    finally:
        w.close()
    assert err.value.code == code and str(err.value).startswith(f"exit {code}")


def test_hook_must_return_a_native_bool(tmp_path):
    hook = "import numpy\ndef acquisition_function(input, labeled=None, context=None):\n" \
           "    return numpy.bool_(True)\n"
    w = Workers(_tiny(tmp_path, "hook", "def predict(i, l):\n    return 0.5\n", hook),
                sys.executable)
    acq = w.acquirer()
    assert acq.mode == "stream"
    with pytest.raises(StreamingFailure, match="must return a native bool") as err:
        acq.ask([{}, {"benchmark_id": "b"}], [], {"labels_remaining": 3, "items_remaining": 9})
    assert err.value.code == 42
    w.close()
    rank = _tiny(tmp_path, "rank", "def predict(i, l):\n    return 0.5\n",
                 "def acquisition_function(input):\n    return 1.0\n")
    w = Workers(rank, sys.executable)
    acq = w.acquirer()
    assert acq.mode == "rank" and acq.ask([{}, {}], [], {}) == 1.0
    acq.close()
    w.close()


def test_archive_checks_name_each_problem(tmp_path):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("sub/model.py", "open('weights.npy')\n")
        zf.writestr("subjects.txt", "x\n")
        zf.writestr("inner.zip", b"PK")
        zf.writestr("models.txt", "\n".join(f"org/m{k}" for k in range(6)))
    problems = " | ".join(archive_problems(z))
    for text in ("no model.py at the root", "'sub/model.py'", "subjects.txt is not allowed",
                 "ZIP inside the ZIP", "declares 6 models", "opens 'weights.npy'"):
        assert text in problems
    with pytest.raises(InputError, match="archive checks"):
        evaluate_streaming(z, tmp_path, tmp_path / "out")


@pytest.mark.slow
def test_streaming_bundle_in_a_fresh_numpy_scipy_venv(world_zip, small_dir, tmp_path):
    """A venv with numpy and scipy only (no bayesirt, no pandas) runs the coordinator."""
    from bayesirt.predictive import load_flat
    from bayesirt.predictive.streaming import StreamingPredictor

    base = Path(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([str(base), "-m", "venv", str(tmp_path / "venv")], check=True)
    py = tmp_path / "venv" / "bin" / "python"
    env = dict(os.environ, PIP_CACHE_DIR=str(tmp_path / "pip"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy", "scipy"],
                          capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"cannot install numpy/scipy (no package registry?): {proc.stderr[-300:]}")
    probe = subprocess.run([str(py), "-I", "-c", "import importlib.util as u; print([m for m in "
                            "('bayesirt', 'pandas', 'jax', 'xarray') if u.find_spec(m)])"],
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert probe.stdout.strip() == "[]"
    res = evaluate_streaming(world_zip.path, small_dir, tmp_path / "out", pairs=5, seeds=[0],
                             python=str(py), echo=lambda s: None)
    assert len(res["records"]) == 3 * 6
    sub = safe_extract(world_zip.path, tmp_path / "sub")
    inputs, labeled = _run_inputs(small_dir, n_labels=7)
    w = Workers(sub, str(py), workers=2)
    try:
        got = w.predict(inputs, labeled)
    finally:
        w.close()
    sp = StreamingPredictor(load_flat(sub / "posterior_flat.nc"))
    np.testing.assert_allclose(got, [sp.predict(x, labeled) for x in inputs], rtol=0,
                               atol=1e-12)


def test_the_command_line_replays_the_platform(world_zip, small_dir, tmp_path):
    """`bayesirt evaluate ZIP DATA --protocol streaming`, as a user runs it."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "bayesirt.cli", "evaluate", str(world_zip.path),
           str(small_dir), "--protocol", "streaming", "--seeds", "0", "--pairs", "5",
           "--out", str(tmp_path / "out"), "--json", str(tmp_path / "m.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "bayesirt ALC" in proc.stdout and "metrics written to" in proc.stdout
    summary = json.loads((tmp_path / "m.json").read_text())["summary"]
    assert {s["predictor"] for s in summary} == {"bayesirt", "empirical_mean", "smoothed_mean"}
    assert all(0 < s["alc"] < 0.5 for s in summary)
    bad = subprocess.run([*cmd[:6], "--protocol", "streaming", "--holdout-benchmarks", "gsm8k",
                          "--out", str(tmp_path / "o2")], capture_output=True, text=True,
                         env=env, timeout=600)
    assert bad.returncode != 0 and "its posterior was fitted on 'gsm8k'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1  # one line, no traceback


def test_a_failing_submission_stops_the_run_in_one_line_and_writes_nothing(small_dir, tmp_path):
    z = tmp_path / "raises.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("model.py", "def predict(input, labeled):\n    raise ValueError('no')\n")
    with pytest.raises(StreamingFailure, match=r"^exit 40 .*ValueError: no") as err:
        evaluate_streaming(z, small_dir, tmp_path / "out", benchmarks=[HELD_OUT], pairs=5,
                           seeds=[0], echo=lambda s: None)
    assert err.value.code == 40
    assert not (tmp_path / "out").exists()
