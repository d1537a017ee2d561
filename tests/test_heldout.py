"""Leave-one-benchmark-out: the platform's pairs, splits, budgets, scores and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayesirt import data as bdata
from bayesirt.errors import InputError
from bayesirt.submission.heldout import (
    ALC_WEIGHTS,
    BUDGETS,
    alc,
    baseline_predictions,
    make_task,
    pair_scores,
    run_task,
)


def responses(rng, n_models=6, n_items=100, short=(5,)):
    """Every model on every item, except the models in ``short`` (40 items only)."""
    m, i = [], []
    for model in range(n_models):
        items = range(40) if model in short else range(n_items)
        m += [f"m{model}"] * len(items)
        i += [f"x{j}" for j in items]
    y = (rng.random(len(m)) < 0.6).astype(np.int8)
    return np.asarray(m, object), np.asarray(i, object), y


@pytest.mark.parametrize("scope", ["pair", "item"])
def test_pairs_pools_and_budgets_follow_the_platform(scope):
    m, i, y = responses(np.random.default_rng(0))
    task = make_task(m, i, y, "B", scope=scope, seed=3)
    assert task.models == ("m0", "m1", "m2", "m3", "m4")  # m5 has 40 < 80 items
    acquired = set()
    for (a_items, _), (s_items, _) in zip(task.acquire, task.score, strict=True):
        assert not set(a_items) & set(s_items) and len(a_items) + len(s_items) == 100
        assert abs(len(a_items) - len(s_items)) <= 1 or scope == "item"
        acquired |= set(a_items)
    scored = set(np.concatenate([s for s, _ in task.score]))
    if scope == "item":  # no label ever lands on a scored item
        assert not acquired & scored
    else:  # an item scored for one model is labelled for another
        assert acquired & scored
    lm, li, ly = task.labels(7)
    assert len(lm) == 35 and all((lm == mod).sum() == 7 for mod in task.models)
    # Labels come from the acquisition pool in its order, with their true values.
    truth = dict(zip(zip(m, i, strict=True), y, strict=True))
    assert all(truth[(a, b)] == c for a, b, c in zip(lm, li, ly, strict=True))
    again = make_task(m, i, y, "B", scope=scope, seed=3)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(task.acquire, again.acquire,
                                                          strict=True))
    other = make_task(m, i, y, "B", scope=scope, seed=4)
    assert not np.array_equal(task.acquire[0][0], other.acquire[0][0])


def test_no_pair_with_enough_items_is_a_clear_error():
    m, i, y = responses(np.random.default_rng(0), n_items=50)
    with pytest.raises(InputError, match=">= 80 distinct items"):
        make_task(m, i, y, "B")
    with pytest.raises(InputError, match="scope"):
        make_task(m, i, y, "B", scope="benchmark")


def test_scores_baselines_and_alc():
    m, i, y = responses(np.random.default_rng(1))
    task = make_task(m, i, y, "B", seed=0)
    _, _, sy, pair = task.scored_pairs()
    half = pair_scores(sy, np.full(sy.size, 0.5), pair)
    assert half["brier"] == pytest.approx(0.25) and half["log_loss"] == pytest.approx(np.log(2))
    p0 = baseline_predictions("empirical_mean", task, 0, {})
    assert np.all(p0 == 0.5)
    p3 = baseline_predictions("smoothed_mean", task, 3, {"m0": 0.9})
    first = task.acquire[0][1][:3]
    assert p3[pair == 0][0] == pytest.approx((first.sum() + 1.8) / 5.0)
    assert alc([0.25] * len(BUDGETS)) == pytest.approx(0.25) and sum(ALC_WEIGHTS) == 1.0
    recs = run_task(task, lambda mm, ii, lab: np.full(len(mm), 0.5), {}, BUDGETS)
    ours = [r for r in recs if r["predictor"] == "bayesirt"]
    assert [r["budget"] for r in ours] == list(BUDGETS)
    assert all(r["brier"] == pytest.approx(0.25) for r in ours)


def test_without_benchmark_removes_it_and_marks_the_fingerprint(small_dir):
    data = bdata.load(small_dir)
    rest = bdata.without_benchmark(data, "mmlu_pro")
    assert "mmlu_pro" not in rest.benchmark_ids and rest.n_benchmarks == data.n_benchmarks - 1
    assert not any(c.startswith("mmlu_pro/") for c in rest.category_ids)
    gone = data.benchmark_ids.index("mmlu_pro")
    assert rest.n_obs == int((data.item_benchmark[data.item_idx] != gone).sum())
    assert rest.fingerprint == data.fingerprint + "-mmlu_pro"
    assert rest.item_embeddings.shape[0] == rest.n_items
    with pytest.raises(InputError, match="no benchmark 'nope'"):
        bdata.without_benchmark(data, "nope")


def test_heldout_refuses_an_unknown_benchmark_before_writing(small_dir, tmp_path, capsys):
    from bayesirt.cli import main

    assert main(["heldout", str(small_dir), "--out", str(tmp_path / "lobo"),
                 "--benchmarks", "nope"]) == 2
    assert "no benchmark 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "lobo").exists()


@pytest.mark.usefixtures("numpyro_lenient")
def test_heldout_command_fits_replays_and_reports(small_dir, tmp_path, capsys):
    from bayesirt.cli import main

    args = [str(small_dir), "--out", str(tmp_path / "lobo"), "--benchmarks", "mmlu_pro",
            "--scope", "item", "--split-seeds", "0", "--chains", "1", "--warmup", "40",
            "--draws", "40", "--no-progress", "--device", "cpu"]
    assert main(["heldout", *args]) == 0
    out = capsys.readouterr().out
    assert "| mmlu_pro | 7 |" in out
    recs = [json.loads(line) for line in
            (tmp_path / "lobo" / "records.jsonl").read_text().splitlines()]
    assert {r["predictor"] for r in recs} == {"bayesirt", "empirical_mean", "smoothed_mean"}
    assert len(recs) == 3 * len(BUDGETS)
    assert (tmp_path / "lobo" / "learning_curves.png").stat().st_size > 10_000
    # A second run reuses the fit (same data fingerprint) and gives the same numbers.
    assert main(["heldout", *args]) == 0
    assert "reusing" in capsys.readouterr().out
    again = [json.loads(line) for line in
             (tmp_path / "lobo" / "records.jsonl").read_text().splitlines()]
    assert again == recs
