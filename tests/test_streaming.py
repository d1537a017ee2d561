"""The streaming runtime: predict(input, labeled) is a pure function; errors name fields."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
from test_newbench import known_world, simulate_new_benchmark

from bayesirt.errors import InputError, InputWarning
from bayesirt.features import instruct_from_name, param_count_from_name
from bayesirt.predictive import ItemInfo, predict_pairs
from bayesirt.predictive.streaming import StreamingPredictor, platform_random_u, subject_info


def _subject(name, **extra):
    return {"normalized_name": name, "provider": "", "release_date": "", **extra}


def _item(j, bench="B"):
    return {"item_content": f"question {j}", "item_features": "", "interactors": "",
            "benchmark_id": bench}


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(3)
    draws, eta = known_world(rng, n_draws=256)
    y = simulate_new_benchmark(rng, eta, 30)
    labeled = []
    for m in range(6):
        for j in range(m % 3, 30, 5):
            labeled.append([[_subject(f"m{m}"), _item(j)], int(y[m, j])])
    # An unknown subject with labels, and labels on a second new benchmark.
    labeled += [[[_subject("acme/new-7b"), _item(j)], int(j % 2)] for j in range(4)]
    labeled += [[[_subject("m1"), _item(j, "C")], 1] for j in range(3)]
    queries = [[_subject(f"m{m}"), _item(j)] for m in (0, 3, 7) for j in (1, 2, 29)]
    queries += [[_subject("acme/new-7b"), _item(9)], [_subject("other/x-1b"), _item(9)],
                [_subject("m1"), _item(8, "C")], [_subject("m2"), _item(8, "C")]]
    return draws, labeled, queries


def test_predictions_are_pure_functions_of_their_inputs(world):
    draws, labeled, queries = world
    a = StreamingPredictor(draws)
    ref = [a.predict(q, labeled) for q in queries]
    assert all(isinstance(p, float) and 0 < p < 1 for p in ref)
    # A fresh predictor, the queries in reverse, the labels shuffled (another list object).
    b = StreamingPredictor(draws)
    shuffled = [labeled[k] for k in np.random.default_rng(0).permutation(len(labeled))]
    assert [b.predict(q, shuffled) for q in queries[::-1]][::-1] == ref
    # After calls with other labels (another checkpoint in the same process), and one query
    # alone in a fresh process-like predictor.
    c = StreamingPredictor(draws)
    c.predict(queries[0], labeled[:5])
    assert [c.predict(q, json.loads(json.dumps(labeled))) for q in queries] == ref
    for k in (0, 10, len(queries) - 1):
        assert StreamingPredictor(draws).predict(queries[k], labeled) == ref[k]


def test_matches_predict_pairs_on_the_same_inputs(world):
    draws, labeled, queries = world
    sp = StreamingPredictor(draws)
    rows = [(sp.subject_id(s)[0], sp.item_id(i), y) for (s, i), y in labeled]
    new_items = {iid: ItemInfo(bench) for _, (iid, bench), _ in rows}
    q = [(sp.subject_id(s)[0], sp.item_id(i)) for s, i in queries[:9]]
    new_items.update({iid: ItemInfo(bench) for _, (iid, bench) in q})
    lab = (np.array([r[0] for r in rows], object), np.array([r[1][0] for r in rows], object),
           np.array([r[2] for r in rows]))
    with pytest.warns(InputWarning, match="neither in the posterior"):
        pp = predict_pairs(draws, [m for m, _ in q], [i for _, (i, _) in q],
                           new_items=new_items, labels=lab)
    got = [sp.predict(x, labeled) for x in queries[:9]]
    # The same engine; only float32 accumulation order differs (one model vs several).
    np.testing.assert_allclose(got, pp, rtol=0, atol=2e-4)


def test_labels_move_the_subject_and_the_benchmark(world):
    draws, _, _ = world
    sp = StreamingPredictor(draws)
    q = [_subject("m4"), _item(100)]
    base = sp.predict(q, [])
    own_right = [[[_subject("m4"), _item(j)], 1] for j in range(5)]
    assert sp.predict(q, own_right) > base + 0.05
    others_wrong = [[[_subject(f"m{m}"), _item(j)], 0] for m in (0, 1, 2) for j in range(5)]
    assert sp.predict(q, others_wrong) < base - 0.05


def test_unknown_subjects_get_their_metadata():
    info = subject_info({"normalized_name": "acme/foo-70b-instruct", "provider": " Acme ",
                         "release_date": "2024-07-01"})
    assert info.org == "Acme" and info.param_count == 7e10 and info.is_instruct == 1.0
    assert info.release_year == pytest.approx(2024 + 182 / 366)
    odd = subject_info({"normalized_name": "x", "release_date": "July"})
    assert math.isnan(odd.release_year) and math.isnan(odd.param_count)
    assert param_count_from_name("mistralai/mixtral-8x7b-v0.1") == 5.6e10
    assert param_count_from_name("qwen1.5-0.5b-chat") == 5e8
    assert math.isnan(param_count_from_name("gpt-4o")) and math.isnan(instruct_from_name("gpt-4o"))
    sp = StreamingPredictor(known_world(np.random.default_rng(0), n_draws=64)[0])
    assert sp.subject_id(_subject("M3")) == ("m3", None)  # case ignored on a second try
    sid, meta = sp.subject_id(_subject("acme/foo-70b-instruct"))
    assert sid.startswith("subject:acme/foo-70b-instruct#") and meta.param_count == 7e10
    assert sp.subject_id(_subject("a", harness="h1"))[0] != sp.subject_id(_subject("a"))[0]


@pytest.mark.parametrize(("call", "message"), [
    (lambda sp: sp.predict([_subject("m0")], []), r"input must be \[subject, item\]"),
    (lambda sp: sp.predict([_subject("m0"), {"item_content": "q"}], []),
     r"input\[1\] \(item\) has no benchmark_id"),
    (lambda sp: sp.predict(["m0", _item(1)], []), r"input\[0\] \(subject\) must be a dict"),
    (lambda sp: sp.predict([_subject("m0"), _item(1)], [[[_subject("m1"), _item(2)], 2]]),
     r"labeled\[0\] label is 2: labels must be 0 or 1"),
    (lambda sp: sp.predict([_subject("m0"), _item(1)], [[_subject("m1"), _item(2)]]),
     r"labeled\[0\]\[0\]\[1\] \(item\) must be a dict|labeled\[0\]\[0\] must be"),
    (lambda sp: sp.predict([_subject("m0"), _item(1)], {"a": 1}), r"labeled must be a list"),
])
def test_errors_name_the_field(call, message):
    sp = StreamingPredictor(known_world(np.random.default_rng(0), n_draws=64)[0])
    with pytest.raises(InputError, match=message):
        call(sp)


def test_acquisition_random_is_the_platforms_rule(world):
    draws, labeled, _ = world
    sp = StreamingPredictor(draws)
    inp = [_subject("m0"), _item(5)]
    ctx = {"subject_id": "s1", "benchmark_id": "B", "labels_acquired": 3,
           "labels_remaining": 28, "max_labels": 31, "items_remaining": 40}
    blob = json.dumps([ctx, inp], sort_keys=True, separators=(",", ":"))
    u = int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big") / 2**64
    assert platform_random_u(inp, ctx) == u
    decision = sp.acquire(inp, labeled, ctx)
    assert type(decision) is bool and decision == (u < 28 / 40)
    assert sp.acquire(inp, labeled, {**ctx, "labels_remaining": 0}) is False
    assert sp.acquire(inp, labeled, {**ctx, "labels_remaining": 40}) is True
    # bald: a native bool too, never more eager than the pace allows.
    bald = [sp.acquire([_subject("m0"), _item(j)], labeled, {**ctx, "items_remaining": 40 + j},
                       policy="bald") for j in range(8)]
    assert all(type(b) is bool for b in bald)
    with pytest.raises(InputError, match="acquisition policy must be one of"):
        sp.acquire(inp, labeled, ctx, policy="greedy")


def test_a_new_list_of_the_same_length_is_read_again(world):
    """Temporary label lists may reuse a freed list's id(): the cache must not trust ids."""
    draws, _, _ = world
    sp = StreamingPredictor(draws)
    q = [_subject("m4"), _item(100)]
    got = [sp.predict(q, [[[_subject("m4"), _item(j)], y] for j in range(4)]) for y in (1, 0)]
    fresh = [StreamingPredictor(draws).predict(
        q, [[[_subject("m4"), _item(j)], y] for j in range(4)]) for y in (1, 0)]
    assert got == fresh and got[0] > got[1]
