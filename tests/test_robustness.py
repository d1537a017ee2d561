"""Robustness of the default hier2pl fit to data shapes it was not tuned on.

The slow tests are the smallest members of ``bench/robustness.py`` (the full suite and its
numbers are in ``bench/results/robustness.md``): the default fit, seed 0, must meet the
headline thresholds on every parameter. The fast tests check the block diagnosis that
``fit`` prints when a fit does not converge, and the category-level parameterisation rule.
"""

import functools
import importlib.util
from pathlib import Path

import jax
import numpy as np
import pytest

from bayesirt.inference import FitConfig, convergence_headline, fit, format_headline
from bayesirt.inference.blame import locate_divergences
from bayesirt.inference.oddchain import locate_odd_chain

BENCH = Path(__file__).resolve().parents[1] / "bench" / "robustness.py"


def _suite():
    spec = importlib.util.spec_from_file_location("robustness_suite", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stats(n_chains=4, n_draws=300):
    return {"diverging": np.zeros((n_chains, n_draws), bool),
            "tree_depth": np.full((n_chains, n_draws), 3)}


def test_blame_names_the_failing_block_and_its_benchmark():
    rng = np.random.default_rng(3)
    post = {
        "difficulty": rng.normal(size=(4, 300, 3)),
        "sigma_category": np.abs(rng.normal(size=(4, 300, 1))),
        "mu_difficulty": rng.normal(size=(4, 300, 2)),
    }
    post["difficulty"][:, :, 2] += np.arange(4)[:, None]  # item 2 (benchmark gsm8k) stuck
    dims = {"difficulty": ("item",), "sigma_category": ("multi_benchmark",),
            "mu_difficulty": ("benchmark",)}
    coords = {"item": ["a:1", "b:1", "b:2"], "benchmark": ["bfcl", "gsm8k"],
              "multi_benchmark": ["bfcl"]}
    constants = {"item_benchmark": np.array([0, 1, 1]), "model_idx": np.array([0, 1, 1]),
                 "item_idx": np.array([0, 1, 2])}
    head = convergence_headline(post, _stats(), 10, dims, coords, constants=constants)
    assert [b["block"] for b in head["blocks"]] == [
        "item difficulties/discriminations of benchmark gsm8k"]
    text, passed = format_headline(head)
    assert not passed
    assert "item difficulties/discriminations of benchmark gsm8k" in text
    assert "worst difficulty[b:2]" in text and "--parameterisation" in text
    assert len(text.splitlines()) <= 24  # one screen


def test_blame_advice_names_the_next_step_size_target_above_the_fits():
    rng = np.random.default_rng(5)
    post = {"mu_difficulty": rng.normal(size=(4, 300, 2))}
    post["mu_difficulty"][:, :, 1] += np.arange(4)[:, None]  # stuck chains
    dims, coords = {"mu_difficulty": ("benchmark",)}, {"benchmark": ["bfcl", "gsm8k"]}
    # hier2pl's default is 0.99: advising 0.9 would mean larger steps, not smaller
    for ta, rung in ((0.8, "0.9"), (0.99, "0.995"), (None, "0.9")):
        head = convergence_headline(post, _stats(), 10, dims, coords, target_accept=ta)
        text, _ = format_headline(head)
        assert f"--target-accept {rung} " in text, (ta, text)


def test_blame_names_the_population_of_benchmarks():
    rng = np.random.default_rng(5)
    post = {"benchmark_pop_difficulty_scale": np.abs(rng.normal(size=(4, 300))),
            "mu_difficulty": rng.normal(size=(4, 300, 2))}
    post["benchmark_pop_difficulty_scale"] += np.arange(4)[:, None]  # stuck chains
    dims = {"benchmark_pop_difficulty_scale": (), "mu_difficulty": ("benchmark",)}
    coords = {"benchmark": ["bfcl", "gsm8k"]}
    constants = {"item_benchmark": np.array([0, 1, 1])}
    head = convergence_headline(post, _stats(), 10, dims, coords, constants=constants)
    assert [b["block"] for b in head["blocks"]] == ["population of benchmarks (benchmark_pop_*)"]
    text, _ = format_headline(head)
    assert "rests on only 2 benchmarks" in text


def test_divergences_are_located_at_the_narrow_end_of_a_funnel():
    rng = np.random.default_rng(4)
    sigma = np.abs(rng.normal(size=(4, 300, 1)))
    diverging = np.zeros((4, 300), bool)
    # Divergences where the category spread is smallest: the neck of the funnel.
    diverging[sigma[..., 0] < np.quantile(sigma, 0.05)] = True
    post = {"sigma_category": sigma, "mu_difficulty": rng.normal(size=(4, 300, 1))}
    dims = {"sigma_category": ("multi_benchmark",), "mu_difficulty": ("benchmark",)}
    coords = {"multi_benchmark": ["mmlu_pro"], "benchmark": ["mmlu_pro"]}
    where = locate_divergences(post, diverging, dims, coords)
    assert where[0]["block"] == "category level of benchmark mmlu_pro"
    assert where[0]["z"] < -5 and "low end of sigma_category[mmlu_pro]" in where[0]["text"]
    head = convergence_headline(post, {**_stats(), "diverging": diverging}, 10, dims, coords)
    text, passed = format_headline(head)
    assert not passed and "divergent transitions sit" in text


def test_divergences_located_no_better_than_chance_are_called_so():
    rng = np.random.default_rng(8)
    # 3,000 scalars with no structure and 6 divergent draws anywhere (the suite's scattered
    # case): some scalar's z reaches ~3.5 by chance alone, which must not read as a location.
    post = {"difficulty": rng.normal(size=(4, 500, 3000))}
    diverging = np.zeros((4, 500), bool)
    diverging.flat[rng.choice(2000, 6, replace=False)] = True
    dims, coords = {"difficulty": ("item",)}, {"item": [f"b:{i}" for i in range(3000)]}
    constants = {"item_benchmark": np.zeros(3000, int)}
    where = locate_divergences(post, diverging, dims, coords, constants)
    assert where[0]["n_scalars"] == 3000 and 4.2 < where[0]["chance_z"] < 4.4
    assert abs(where[0]["z"]) > 2.5  # the top scalar always looks lopsided...
    assert abs(where[0]["z"]) < where[0]["chance_z"]  # ...but not beyond chance
    head = convergence_headline(post, {**_stats(n_draws=500), "diverging": diverging}, 10,
                                dims, coords, constants=constants)
    text, _ = format_headline(head)
    assert "sit nowhere beyond chance: among 3,000 scalars |z| < 4.3" in text, text
    # A funnel's spread at the same count is named with its own advice instead.
    post["sigma_difficulty"] = np.abs(rng.normal(size=(4, 500, 1)))
    diverging[:] = post["sigma_difficulty"][..., 0] < np.quantile(post["sigma_difficulty"], 0.01)
    dims["sigma_difficulty"], coords["benchmark"] = ("benchmark",), ["b"]
    head = convergence_headline(post, {**_stats(n_draws=500), "diverging": diverging}, 10,
                                dims, coords, constants=constants)
    text, _ = format_headline(head)
    assert "beyond chance" not in text and "low end of sigma_difficulty[b]" in text, text


def _odd_chain_case(n_chains=4, n_draws=300, seed=6):
    """Draws of four agreeing chains, their sample stats, names: a healthy fit."""
    rng = np.random.default_rng(seed)
    post = {"difficulty": rng.normal(size=(n_chains, n_draws, 3)),
            "rho": 0.9 + 0.02 * rng.normal(size=(n_chains, n_draws, 2))}
    stats = {"diverging": np.zeros((n_chains, n_draws), bool),
             "tree_depth": np.full((n_chains, n_draws), 5),
             "n_steps": np.full((n_chains, n_draws), 31),
             "step_size": np.full((n_chains, n_draws), 0.1) * (1 + 0.3 * np.arange(n_chains))[
                 :, None]}
    dims = {"difficulty": ("item",), "rho": ("benchmark",)}
    coords = {"item": ["a:1", "b:1", "b:2"], "benchmark": ["bfcl", "gsm8k"]}
    constants = {"item_benchmark": np.array([0, 1, 1])}
    return post, stats, dims, coords, constants


def test_a_stuck_chain_is_named_with_where_it_sits():
    post, stats, dims, coords, constants = _odd_chain_case()
    assert locate_odd_chain(post, stats, dims, coords, constants) is None  # healthy
    # Chain 2 (index 1) adapted a step size 500x smaller, runs to the tree-depth limit and
    # barely moves, far out on item b:2 (the pattern of bench/results/robustness_20261207.md).
    stats["step_size"][1] = 2e-4
    stats["n_steps"][1], stats["tree_depth"][1] = 1023, 10
    post["difficulty"][1, :, 2] = -8.0 + 0.01 * post["difficulty"][1, :, 2]
    odd = locate_odd_chain(post, {**stats, "max_tree_depth": 10}, dims, coords, constants)
    assert odd["chain"] == 1 and odd["reason"] == "stuck"
    assert odd["tree_depth_hits"] == 300 and odd["steps_per_draw"] == 1023
    assert odd["apart"][0]["parameter"] == "difficulty[b:2]"
    assert odd["apart"][0]["block"] == "item difficulties/discriminations of benchmark gsm8k"
    head = convergence_headline(post, stats, 10, dims, coords, constants=constants)
    text, passed = format_headline(head)
    assert not passed
    assert "one chain is stuck: chain 2 of 4 adapted a step size of 0.0002" in text
    assert "1023 leapfrog steps per draw" in text and "difficulty[b:2] -8" in text
    assert len(text.splitlines()) <= 24  # still one screen


def test_a_chain_holding_the_divergences_is_named_and_two_chains_never_are():
    post, stats, dims, coords, constants = _odd_chain_case()
    # 40 of 44 divergences in chain 4 (index 3), where its loading of bfcl runs high.
    stats["diverging"][3, :40] = True
    stats["diverging"][0, :4] = True
    post["rho"][3, :, 0] += 0.08
    odd = locate_odd_chain(post, stats, dims, coords, constants)
    assert odd["chain"] == 3 and odd["reason"] == "divergences"
    assert (odd["divergences"], odd["divergences_total"]) == (40, 44)
    assert odd["apart"][0]["parameter"] == "rho[bfcl]"
    text, _ = format_headline(convergence_headline(post, stats, 10, dims, coords,
                                                   constants=constants))
    assert "one chain holds the divergences: chain 4 of 4, 40 of 44" in text
    # Spread evenly, the same count names no chain.
    stats["diverging"][:] = False
    stats["diverging"][:, :11] = True
    assert locate_odd_chain(post, stats, dims, coords, constants) is None
    # With two chains there is no majority to be odd against.
    two = {k: v[:2] for k, v in post.items()}
    stats2 = {k: v[:2] for k, v in stats.items()}
    stats2["step_size"][1] = 1e-5
    assert locate_odd_chain(two, stats2, dims, coords, constants) is None


@functools.cache
def _default_fit(member: str, seed: int = 0):
    """One default fit per member and seed, shared by the tests below (minutes each)."""
    data = _suite().MEMBERS[member]()
    res = fit(jax.random.key(seed), data, FitConfig(seed=seed, progress=False))
    head = convergence_headline(res.posterior, res.sample_stats, res.max_tree_depth,
                                res.dims, res.coords, constants=res.constant_data)
    return head, format_headline(head)


# Two members where the category level was the failing block before the category rule
# (535 and 635 divergences at the low end of sigma_category, bench/results/robustness.md).
FUNNEL_MEMBERS = ["sim-few-models", "real-small-merge-split"]


@pytest.mark.slow
@pytest.mark.parametrize("member", FUNNEL_MEMBERS)
@pytest.mark.usefixtures("numpyro_lenient")
def test_default_fit_has_no_category_funnel(member):
    """sim-few-models: 5 benchmarks of 7-12 models, 2-5 categories of 2-80 items, from the
    prior; real-small-merge-split: the small set with bfcl / mmlu_pro categories merged into
    2 / 3 and cruxeval_o split into two random halves (a category spread of ~0)."""
    head, (text, _) = _default_fit(member)
    # No category-level parameter fails a threshold (R-hat, ESS), and the divergences do not
    # sit in that level. The thresholds over EVERY parameter are the acceptance, the
    # test below (real-small-merge-split, seed 0: R-hat 1.0104 at a cruxeval_o item
    # difficulty, 33 divergences first at item level; bench/results/robustness_pop.md).
    assert not any(b["kind"] == "category" for b in head["blocks"]), text
    located = head["divergence_location"]
    assert not (located and located[0]["block"].startswith("category level")
                and abs(located[0]["z"]) >= 4), text


@pytest.mark.slow
@pytest.mark.parametrize("member", FUNNEL_MEMBERS)
@pytest.mark.xfail(reason="the issue's acceptance, not met yet: a few divergences remain at "
                          "the item-slope level (bench/results/robustness.md)", strict=False)
@pytest.mark.usefixtures("numpyro_lenient")
def test_default_fit_meets_every_threshold(member):
    _, (text, passed) = _default_fit(member)
    assert passed, text


def test_category_means_are_centred_only_where_their_items_pin_them():
    from bayesirt.models.inputs import (
        CATEGORY_PIN_RATIO,
        CENTRE_MIN_BENCHMARK_ITEMS,
        category_pin,
        parameterisation_masks,
    )

    rng = np.random.default_rng(5)
    n_models = 40
    # Benchmark 0: two categories of 100 similar items, 3 logits apart (pinned); benchmark 1:
    # a meaningless split (a funnel if centred: sigma_category can be ~0).
    shift = np.r_[np.full(100, -1.5), np.full(100, 1.5), np.zeros(200)]
    p_correct = 1.0 / (1.0 + np.exp(shift + rng.normal(0.0, 0.5, 400)))
    n_correct = rng.binomial(n_models, p_correct)
    item_category = np.repeat([0, 1, 2, 3], 100)
    pin = category_pin(np.full(400, n_models), n_correct, item_category,
                       np.array([0, 0, 1, 1]), np.arange(4))
    assert np.all(pin[:2] <= CATEGORY_PIN_RATIO) and np.all(pin[2:] > CATEGORY_PIN_RATIO)
    common = (np.full(400, 10), np.full(400, 200), np.full(4, 100))
    masks = parameterisation_masks(*common, category_pin=pin,
                                   category_benchmark_size=np.full(4, 200))
    assert masks["category_centred"].tolist() == [1, 1, 0, 0]
    # Under centred items (large benchmarks) category means stay centred.
    big = np.full(4, CENTRE_MIN_BENCHMARK_ITEMS)
    masks = parameterisation_masks(*common, category_pin=pin, category_benchmark_size=big)
    assert masks["category_centred"].tolist() == [1, 1, 1, 1]
