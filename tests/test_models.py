import dataclasses

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesirt.models import MODELS, build_inputs, complete_abilities, contract_posterior, get_model
from bayesirt.models.simulate import simulate


def test_registry_names_and_unknown_model_message():
    assert set(MODELS) == {"rasch", "2pl", "hier2pl"}
    with pytest.raises(ValueError, match="unknown model 'hier3pl'.*2pl, hier2pl, rasch"):
        get_model("hier3pl")


def test_factor_density_matches_multivariate_normal_on_observed_subsets():
    import jax.numpy as jnp

    from bayesirt.models.factor import factor_ability_logdensity

    rng = np.random.default_rng(1)
    n_models, n_bench = 6, 4
    mask = rng.random((n_models, n_bench)) < 0.6
    mask[np.arange(n_models), rng.integers(0, n_bench, n_models)] = True
    cell_model, cell_bench = np.nonzero(mask)
    x = rng.normal(size=cell_model.size)
    rho = rng.uniform(0.1, 0.9, n_bench)
    data = {
        "cell_model": jnp.asarray(cell_model, dtype=jnp.int32),
        "cell_benchmark": jnp.asarray(cell_bench, dtype=jnp.int32),
        "cell_mask": jnp.asarray(mask, dtype=jnp.float32),
    }
    got = float(
        factor_ability_logdensity(
            jnp.asarray(x, dtype=jnp.float32), jnp.asarray(rho, dtype=jnp.float32), data,
            n_models, n_bench,
        )
    )
    cov = np.diag(1 - rho**2) + np.outer(rho, rho)
    expected = 0.0
    for m in range(n_models):
        rows = cell_model == m
        ks = cell_bench[rows]
        expected += multivariate_normal(np.zeros(ks.size), cov[np.ix_(ks, ks)]).logpdf(x[rows])
    assert got == pytest.approx(expected, rel=1e-5)


def test_build_inputs_cells_categories_and_pca():
    data, _ = simulate(
        np.random.default_rng(0), "hier2pl", n_models=8, items_per_benchmark=(10, 12),
        categories_per_benchmark=(3, 1),
    )
    inputs = build_inputs(data)
    a = inputs.arrays
    # Every observation points at the cell of its own model and benchmark.
    obs_bench = a["item_benchmark"][a["obs_item"]]
    assert np.array_equal(a["cell_model"][a["obs_cell"]], a["model_idx"])
    assert np.array_equal(a["cell_benchmark"][a["obs_cell"]], obs_bench)
    assert a["cell_mask"].sum() == inputs.sizes["n_cells"]
    # Only the three-category benchmark gets a free category level.
    assert list(a["multi_benchmark"]) == [0]
    assert inputs.sizes["n_free_categories"] == len(np.unique(a["item_category"][:10]))
    with pytest.raises(ValueError, match="needs item embeddings"):
        build_inputs(data, embedding_components=2)


def test_pca_projection_reproduces_training_scores(small_dir):
    from bayesirt.data import load

    data = load(small_dir)
    inputs = build_inputs(data, embedding_components=4)
    c = inputs.constants
    emb = data.item_embeddings[: data.n_train_items]
    z = ((emb - c["embedding_pca_mean"]) @ c["embedding_pca_components"].T) / c[
        "embedding_pca_scale"
    ]
    np.testing.assert_allclose(z, inputs.arrays["item_embedding_pc"], atol=1e-4)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=1e-3)


def test_complete_abilities_keeps_observed_cells_and_fills_from_the_conditional():
    data, _ = simulate(np.random.default_rng(2), "hier2pl", n_models=5,
                       items_per_benchmark=(5, 5, 5), coverage=0.5)
    inputs = build_inputs(data)
    n_cells = inputs.sizes["n_cells"]
    draws = 20_000
    ability_cell = np.broadcast_to(np.linspace(-1, 1, n_cells), (1, draws, n_cells))
    rho = np.full((1, draws, 3), 0.6)
    ability, general, _ = complete_abilities(np.random.default_rng(3), ability_cell, rho, inputs)
    mask = inputs.arrays["cell_mask"].astype(bool)
    observed = ability[0, 0][mask]
    assert np.allclose(
        observed,
        ability_cell[0, 0][np.argsort(inputs.arrays["cell_model"] * 3
                                      + inputs.arrays["cell_benchmark"])],
    )
    # Unobserved cell mean = rho * E[eta | x]; variance = rho^2 Var[eta | x] + 1 - rho^2.
    m, k = np.argwhere(~mask)[0]
    rows = inputs.arrays["cell_model"] == m
    x = ability_cell[0, 0][rows]
    d = 1 - 0.6**2
    v = 1 / (1 + rows.sum() * 0.36 / d)
    mean = 0.6 * v * (0.6 * x / d).sum()
    var = 0.36 * v + d
    assert ability[0, :, m, k].mean() == pytest.approx(mean, abs=0.03)
    assert ability[0, :, m, k].var() == pytest.approx(var, rel=0.05)
    assert general.shape == (1, draws, 5)


@pytest.mark.parametrize("name", ["rasch", "2pl", "hier2pl"])
def test_contract_posterior_names_and_shapes(name):
    data, _ = simulate(np.random.default_rng(4), name, n_models=4, items_per_benchmark=(6, 6),
                       categories_per_benchmark=(2, 1))
    inputs = build_inputs(data)
    s = inputs.sizes
    rng = np.random.default_rng(0)
    lead = (2, 3)
    samples = {
        "difficulty": rng.normal(size=(*lead, s["n_items"])),
    }
    if name == "hier2pl":
        samples.update(
            ability_cell=rng.normal(size=(*lead, s["n_cells"])),
            ability_std=rng.normal(size=(*lead, s["n_cells"])),
            rho=rng.uniform(0.2, 0.8, size=(*lead, 2)),
            log_discrimination=rng.normal(size=(*lead, s["n_items"])),
            mu_difficulty=rng.normal(size=(*lead, 2)),
            sigma_difficulty=rng.uniform(size=(*lead, 2)),
            mu_log_discrimination=rng.normal(size=(*lead, 2)),
            sigma_log_discrimination=rng.uniform(size=(*lead, 2)),
            sigma_category=rng.uniform(size=(*lead, s["n_multi"])),
            category_offset_free=rng.normal(size=(*lead, s["n_free_categories"])),
        )
    else:
        samples.update(
            theta=rng.normal(size=(*lead, s["n_models"])),
            mu_difficulty_global=rng.normal(size=lead),
            sigma_difficulty_global=rng.uniform(size=lead),
        )
        if name == "2pl":
            samples.update(
                log_discrimination=rng.normal(size=(*lead, s["n_items"])),
                mu_log_discrimination_global=rng.normal(size=lead),
                sigma_log_discrimination_global=rng.uniform(size=lead),
            )
    post, dims = contract_posterior(name, samples, inputs, rng)
    for key, shape in {
        "ability": (s["n_models"], 2),
        "difficulty": (s["n_items"],),
        "log_discrimination": (s["n_items"],),
        "mu_difficulty": (2,),
        "sigma_log_discrimination": (2,),
        "ability_pop_loc": (2,),
        "ability_pop_scale": (2,),
    }.items():
        assert post[key].shape == (*lead, *shape), key
        assert len(dims[key]) == len(shape)
        assert post[key].dtype == np.float32
    assert "ability_cell" not in post
    if name == "rasch":
        assert not post["log_discrimination"].any()
    if name == "hier2pl":
        assert post["category_offset"].shape == (*lead, s["n_categories"])
        free = inputs.arrays["free_category"]
        np.testing.assert_allclose(post["category_offset"][..., free],
                                   samples["category_offset_free"], rtol=1e-6)
        others = np.setdiff1d(np.arange(s["n_categories"]), free)
        assert not post["category_offset"][..., others].any()
        assert "category_offset_free" not in post


def test_parameterisation_masks_follow_the_data_thresholds():
    from bayesirt.models.inputs import (
        CENTRE_MIN_BENCHMARK_ITEMS as BIG,
    )
    from bayesirt.models.inputs import (
        CENTRE_MIN_CATEGORY_ITEMS,
        CENTRE_MIN_RESPONSES,
        parameterisation_masks,
    )

    minority = np.array([CENTRE_MIN_RESPONSES - 1, CENTRE_MIN_RESPONSES, 70, 70])
    bench_size = np.array([BIG, BIG, BIG, BIG - 1])
    items = np.array([CENTRE_MIN_CATEGORY_ITEMS - 1, CENTRE_MIN_CATEGORY_ITEMS])
    auto = parameterisation_masks(minority, bench_size, items)
    # Centred only where the item has enough minority responses AND its benchmark is large;
    # slopes never (one item's responses do not pin its slope).
    assert auto["difficulty_centred"].tolist() == [0, 1, 1, 0]
    assert auto["log_discrimination_centred"].tolist() == [0, 0, 0, 0]
    assert auto["category_centred"].tolist() == [0, 1]
    forced = parameterisation_masks(minority, bench_size, items, "centred")
    assert forced["difficulty_centred"].all() and forced["log_discrimination_centred"].all()
    none = parameterisation_masks(minority, bench_size, items, "noncentred")
    assert not none["category_centred"].any() and not none["log_discrimination_centred"].any()
    with pytest.raises(ValueError, match="parameterisation must be one of.*got 'both'"):
        parameterisation_masks(minority, bench_size, items, "both")


def test_build_inputs_carries_parameterisation_masks_of_the_right_size():
    from bayesirt.models.inputs import CENTRE_MIN_BENCHMARK_ITEMS, CENTRE_MIN_RESPONSES

    data, _ = simulate(np.random.default_rng(3), "hier2pl", n_models=20,
                       items_per_benchmark=(CENTRE_MIN_BENCHMARK_ITEMS, 8),
                       categories_per_benchmark=(1, 2))
    s = build_inputs(data).sizes
    a = build_inputs(data, parameterisation="noncentred").arrays
    assert a["difficulty_centred"].shape == (s["n_items"],)
    assert a["category_centred"].shape == (s["n_free_categories"],)
    assert not a["difficulty_centred"].any()
    # auto: centred exactly where an item has enough minority responses in the large
    # benchmark; the 8-item benchmark's items and its 4-item categories stay non-centred.
    auto = build_inputs(data).arrays
    n = np.bincount(data.item_idx, minlength=s["n_items"])
    k = np.bincount(data.item_idx, weights=data.response, minlength=s["n_items"])
    expected = (np.minimum(k, n - k) >= CENTRE_MIN_RESPONSES) & (auto["item_benchmark"] == 0)
    assert 0 < expected.sum() < (auto["item_benchmark"] == 0).sum()  # both forms occur
    assert np.array_equal(auto["difficulty_centred"].astype(bool), expected)
    assert not auto["log_discrimination_centred"].any()
    assert not auto["category_centred"].any()


def test_a_loading_is_centred_only_where_enough_models_link_its_benchmark():
    from bayesirt.models.inputs import LOADING_CENTRE_MIN_LINKED as T

    data, _ = simulate(np.random.default_rng(4), "hier2pl", n_models=T + 40,
                       items_per_benchmark=(3, 3, 3), coverage=1.0)
    bench = np.asarray(data.item_benchmark)[data.item_idx]
    m = data.model_idx
    # benchmark 0: models 0..T+9, every one also on benchmark 1 or 2 (T+10 linking);
    # 1: models 0..T-2 (T-1 linking, one short); 2: models 0-5 and T-1..T+39 (47 models, but
    # only the 17 that took benchmark 0 too identify its loading).
    keep = np.where(bench == 0, m < T + 10,
                    np.where(bench == 1, m < T - 1, (m < 6) | (m >= T - 1)))
    thinned = dataclasses.replace(data, model_idx=m[keep], item_idx=data.item_idx[keep],
                                  response=data.response[keep])
    assert build_inputs(thinned).arrays["loading_centred"].tolist() == [1.0, 0.0, 0.0]
    assert build_inputs(thinned, parameterisation="noncentred").arrays[
        "loading_centred"].tolist() == [0.0, 0.0, 0.0]
    assert build_inputs(thinned, parameterisation="centred").arrays[
        "loading_centred"].tolist() == [1.0, 1.0, 1.0]
    # Both shared data sets (at most 45 linking models per benchmark) are below it.
    assert T > 45


def test_few_categories_get_the_boundary_avoiding_spread_prior():
    import jax
    from numpyro import handlers
    from numpyro.infer import init_to_uniform

    from bayesirt.models.inputs import CATEGORY_FEW_MAX
    from bayesirt.models.irt import hier2pl
    from bayesirt.models.population import (
        CATEGORY_SPREAD_PRIOR,
        CATEGORY_SPREAD_PRIOR_FEW,
        population_prior,
    )

    data, _ = simulate(np.random.default_rng(6), "hier2pl", n_models=8,
                       items_per_benchmark=(20, 40), coverage=1.0,
                       categories_per_benchmark=(2, CATEGORY_FEW_MAX + 2))
    inputs = build_inputs(data)
    assert inputs.arrays["multi_few_categories"].tolist() == [1.0, 0.0]
    sigma = np.array([0.3, 1.7])
    model = handlers.substitute(handlers.seed(hier2pl, jax.random.key(0)),
                                substitute_fn=init_to_uniform)
    model = handlers.condition(model, {"sigma_category": sigma})
    trace = handlers.trace(model).get_trace(inputs.arrays, y=inputs.response, **inputs.sizes)
    site = trace["sigma_category"]
    # What the model adds for each spread: its sample site plus the swap factor.
    per_spread = np.asarray(site["fn"].log_prob(site["value"]))
    factor = trace["category_spread_few_prior"]
    total = per_spread.sum() + float(np.sum(factor["fn"].log_prob(factor["value"])))
    few, many = population_prior(*CATEGORY_SPREAD_PRIOR_FEW), population_prior(
        *CATEGORY_SPREAD_PRIOR)
    expected = float(few.log_prob(sigma[0]) + many.log_prob(sigma[1]))
    assert total == pytest.approx(expected, abs=1e-5)
    assert abs(float(few.log_prob(sigma[0]) - many.log_prob(sigma[0]))) > 0.1  # not a no-op


def test_population_spreads_are_gamma2_of_the_stated_mean():
    import jax

    from bayesirt.models.population import POPULATION_PRIORS, population_prior
    from bayesirt.models.simulate import _population_draw

    family, loc, mean = POPULATION_PRIORS["logit_loading_scale"]
    assert family == "gamma2"
    prior = population_prior(family, loc, mean)
    draws = np.asarray(prior.sample(jax.random.key(0), (40_000,)))
    # Gamma(2, 2/mean): mean `mean`, sd mean/sqrt(2); MC se of the mean ~0.003.
    assert draws.mean() == pytest.approx(mean, abs=0.015)
    assert draws.std() == pytest.approx(mean / np.sqrt(2.0), abs=0.015)
    # zero-avoiding: far less mass near 0 than a half-normal of the same mean
    assert np.mean(draws < 0.1 * mean) < 0.02
    sim = np.array([_population_draw(np.random.default_rng(i), family, loc, mean)
                    for i in range(4000)])
    assert sim.mean() == pytest.approx(mean, abs=0.04)
    with pytest.raises(ValueError, match="unknown population prior family 'cauchy'"):
        population_prior("cauchy", 0.0, 1.0)


@pytest.mark.parametrize("centred", [0.0, 1.0])
def test_mixed_normal_is_the_same_normal_in_either_form(centred):
    import jax
    import jax.numpy as jnp
    from numpyro import handlers

    from bayesirt.models.population import mixed_normal

    n = 20_000
    loc = jnp.full(n, 1.5)
    scale = jnp.full(n, 0.4)
    with handlers.seed(rng_seed=jax.random.key(0)):
        x = np.asarray(mixed_normal("x", loc, scale, jnp.full(n, centred)))
    # Monte Carlo standard errors: 0.4 / sqrt(n) = 0.003 for the mean, ~0.002 for the sd.
    assert x.mean() == pytest.approx(1.5, abs=0.012)
    assert x.std() == pytest.approx(0.4, abs=0.008)


@pytest.mark.parametrize("split_scale", [False, True])
def test_the_mean_split_keeps_every_value_an_independent_normal(split_scale):
    """Groups of 30 (split; 6 centred, 24 not), 3 (not split: the plain form) and 25 values
    (split) with values-specific locations; over 4,000 prior draws each value is N(loc, scale), a
    split group's mean has sd scale / sqrt(n) and its deviations' sum of squares the
    chi-square law with n - 1 degrees of freedom: its values stay independent normals."""
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import Predictive

    from bayesirt.models.population import mixed_normal_split

    group = np.repeat([0, 1, 2], [30, 3, 25])
    group_scale = np.array([0.5, 2.0, 1.2])
    loc = np.linspace(-1, 1, group.size)
    centred = np.zeros(group.size)
    centred[:6] = 1.0  # a group's centred values are left as they are
    n_nc = np.array([24, 3, 25])

    def model():
        x = mixed_normal_split(
            "x", jnp.asarray(loc), jnp.asarray(group_scale[group]), jnp.asarray(centred),
            jnp.asarray(group), jnp.asarray(group_scale), 3, jnp.array([1.0, 0.0, 1.0]),
            "value", split_scale)
        numpyro.deterministic("values", x)

    n = 4000
    out = Predictive(model, num_samples=n)(jax.random.key(0))
    x = np.asarray(out["values"])
    z = (x - loc) / group_scale[group]
    # Standard errors: 1 / sqrt(4000) = 0.016 for a mean, 0.011 for an sd; 5 sigma bands.
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=0.08)
    np.testing.assert_allclose(z.std(axis=0), 1.0, atol=0.056)
    # The mean of a split group's standardised non-centred values: sd 1 / sqrt(n).
    for g, lo, hi in ((0, 6, 30), (2, 33, 58)):
        mean = z[:, lo:hi].mean(axis=1)
        assert mean.std() * np.sqrt(n_nc[g]) == pytest.approx(1.0, abs=0.056)
        ss = ((z[:, lo:hi] - mean[:, None]) ** 2).sum(axis=1)
        # chi2(n - 1): mean n - 1 (standard error sqrt(2 (n - 1) / 4000)), variance 2 (n - 1).
        assert ss.mean() == pytest.approx(n_nc[g] - 1, abs=5 * np.sqrt(2 * (n_nc[g] - 1) / n))
        assert ss.var() == pytest.approx(2 * (n_nc[g] - 1), rel=0.15)
    # The raw coordinate holds what the plain form calls raw: z where non-centred.
    raw = np.asarray(out["x"])
    np.testing.assert_allclose(raw[:, 6:], z[:, 6:], atol=1e-4)
    np.testing.assert_allclose(raw[:, :6], x[:, :6], atol=1e-5)
    assert out["x_group_mean"].shape == (n, 3)
    assert ("x_group_log_spread2" in out) == split_scale


def test_item_mean_pin_separates_pinned_from_noisy_items():
    """Items of one true spread answered by 200 models are pinned (ratio well below 0.5);
    answered by 6, noise swamps the spread; identical items have no spread (inf)."""
    from bayesirt.models.inputs import item_mean_pin

    rng = np.random.default_rng(0)
    p = 1 / (1 + np.exp(-rng.normal(0, 1.5, 60)))
    ratios = []
    for n in (200, 6):
        n_correct = rng.binomial(n, p)
        ratios.append(item_mean_pin(np.full(60, n), n_correct, np.zeros(60, int),
                                    np.zeros(60, int), np.ones(60, bool), 1)[0])
    assert ratios[0] < 0.3 < 1.0 < ratios[1]
    same = item_mean_pin(np.full(60, 40), np.full(60, 20), np.zeros(60, int),
                         np.zeros(60, int), np.ones(60, bool), 1)
    assert np.isinf(same[0])


def test_build_inputs_splits_only_benchmarks_whose_items_are_pinned(monkeypatch):
    from bayesirt.models import inputs as model_inputs

    data, _ = simulate(np.random.default_rng(2), "hier2pl", n_models=60,
                       items_per_benchmark=(30, 30), coverage=1.0)
    keep = (np.asarray(data.item_benchmark)[data.item_idx] == 0) | (data.model_idx < 5)
    data = dataclasses.replace(data, model_idx=data.model_idx[keep],
                               item_idx=data.item_idx[keep], response=data.response[keep])
    monkeypatch.setattr(model_inputs, "ITEM_SPLIT_PIN_RATIO", None)
    assert "difficulty_split" not in build_inputs(data).arrays  # off
    monkeypatch.setattr(model_inputs, "ITEM_SPLIT_PIN_RATIO", 1.0)
    split = build_inputs(data).arrays["difficulty_split"]
    # benchmark 0: 60 models per item; benchmark 1: 5.
    np.testing.assert_array_equal(split, [1.0, 0.0])


def test_the_population_of_benchmarks_is_estimated_from_four_benchmarks_not_three():
    import jax
    from numpyro import handlers
    from numpyro.infer import init_to_uniform

    from bayesirt.models.irt import hier2pl
    from bayesirt.models.population import POPULATION_MIN_BENCHMARKS

    assert POPULATION_MIN_BENCHMARKS == 4
    for n_bench, estimated in ((3, False), (4, True)):
        data, _ = simulate(np.random.default_rng(1), "hier2pl", n_models=6,
                           items_per_benchmark=(5,) * n_bench, coverage=1.0)
        inputs = build_inputs(data)
        model = handlers.substitute(handlers.seed(hier2pl, jax.random.key(0)),
                                    substitute_fn=init_to_uniform)
        trace = handlers.trace(model).get_trace(inputs.arrays, y=inputs.response,
                                                **inputs.sizes)
        assert ("benchmark_pop_logit_loading_scale" in trace) == estimated


def test_simulate_standardises_hier2pl_abilities_per_benchmark():
    data, truth = simulate(np.random.default_rng(5), "hier2pl", n_models=12,
                           items_per_benchmark=(4, 4, 4))
    for k in range(3):
        rows = truth["observed_cell"][:, k]
        assert truth["ability"][rows, k].mean() == pytest.approx(0, abs=1e-12)
        assert truth["ability"][rows, k].std(ddof=1) == pytest.approx(1)
    assert data.n_obs == int(truth["observed_cell"][:, data.item_benchmark].sum())
    with pytest.raises(ValueError, match="cannot simulate"):
        simulate(np.random.default_rng(0), "3pl")


def test_nuisance_widths_narrow_only_for_large_cells():
    from bayesirt.models.inputs import NARROW_NUISANCE_MIN_ITEMS as BIG

    data, _ = simulate(np.random.default_rng(6), "hier2pl", n_models=6,
                       items_per_benchmark=(5, BIG))
    a = build_inputs(data).arrays
    width = a["benchmark_nuisance_width"]
    assert width.shape == (2,)
    # 5 items answered per cell: width 1; BIG items: 1 / sqrt(1 + 0.1 BIG).
    np.testing.assert_allclose(width, [1.0, 1 / np.sqrt(1 + 0.1 * BIG)], rtol=1e-5)
    assert 0 < a["model_nuisance_width"][0] < 1


def test_loading_tilt_normaliser_and_draws_match_monte_carlo():
    """Gauss-Hermite log Z of the tilt, the runtime's tilted quantiles and the simulator's
    rejection draws all describe the same density (checked against plain Monte Carlo)."""
    from bayesirt.models.population import UNIQUENESS_POWER, log_tilt_normaliser
    from bayesirt.models.simulate import _tilted_loadings
    from bayesirt.predictive.newbench import tilted_logit_quantiles

    rng = np.random.default_rng(11)
    for loc, scale in [(1.5, 2.5), (0.0, 1.0), (3.0, 0.5)]:
        x = rng.normal(loc, scale, 400_000)
        w = (1.0 - (1.0 / (1.0 + np.exp(-x))) ** 2) ** UNIQUENESS_POWER
        assert float(log_tilt_normaliser(loc, scale)) == pytest.approx(np.log(w.mean()),
                                                                     abs=2e-3)
        order = np.argsort(x)
        cdf = np.cumsum(w[order]) / w.sum()
        u = np.array([0.1, 0.5, 0.9])
        want = np.interp(u, cdf, x[order])
        got = tilted_logit_quantiles(np.full(3, loc), np.full(3, scale),
                                     np.full(3, UNIQUENESS_POWER), u)
        np.testing.assert_allclose(got, want, atol=0.03 * scale)
        rho = _tilted_loadings(rng, loc, scale, 100_000)
        logit = np.log(rho) - np.log1p(-rho)
        np.testing.assert_allclose(np.quantile(logit, u), want, atol=0.04 * scale)


def _brute_force_outlier_mixture(x, cm, mask, rho, pi, sigma):
    """Sum over every indicator configuration of each model's cells, by scipy: a regular
    cell is sigma times the unit-scale factor draw, an outlier cell N(0, 1)."""
    import itertools

    from scipy.stats import multivariate_normal

    total = 0.0
    for m in range(mask.shape[0]):
        S = np.nonzero(mask[m])[0]
        dens = 0.0
        for z in itertools.product([0, 1], repeat=S.size):
            z = np.asarray(z)
            r = rho[S] * (1 - z)
            s = np.where(z == 1, 1.0, sigma[S])
            cov = (np.diag(1 - r**2) + np.outer(r, r)) * np.outer(s, s)
            dens += (pi ** z.sum() * (1 - pi) ** (S.size - z.sum())
                     * multivariate_normal(np.zeros(S.size), cov).pdf(x[cm == m]))
        total += np.log(dens)
    return total


def test_outlier_mixture_density_is_the_exact_sum_over_configurations():
    """The factor density with outliers equals the brute-force mixture over indicators,
    with unit regular scale (the option's default) and with the regular cells' own scale."""
    import jax.numpy as jnp

    from bayesirt.models.factor import factor_ability_logdensity

    rng = np.random.default_rng(0)
    mask = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0]], float)
    cm, cb = np.nonzero(mask)
    x = rng.normal(size=cm.size)
    rho = np.array([0.9, 0.6, 0.3])
    data = {"cell_mask": jnp.asarray(mask), "cell_model": jnp.asarray(cm),
            "cell_benchmark": jnp.asarray(cb)}
    pi = 0.2
    got = float(factor_ability_logdensity(jnp.asarray(x), jnp.asarray(rho), data, 4, 3,
                                          outlier=jnp.asarray(pi)))
    assert abs(got - _brute_force_outlier_mixture(x, cm, mask, rho, pi, np.ones(3))) < 1e-4
    base = float(factor_ability_logdensity(jnp.asarray(x), jnp.asarray(rho), data, 4, 3))
    assert abs(got - base) > 0.1  # the option changes the density

    sigma = np.array([0.5, 1.3, 0.8])
    got = float(factor_ability_logdensity(jnp.asarray(x), jnp.asarray(rho), data, 4, 3,
                                          outlier=jnp.asarray(pi),
                                          regular_scale=jnp.asarray(sigma)))
    assert abs(got - _brute_force_outlier_mixture(x, cm, mask, rho, pi, sigma)) < 1e-4


def test_completed_abilities_mark_an_outlier_cell():
    """A model far off its general ability on one benchmark gets a high outlier probability."""
    from bayesirt.models import complete_abilities

    data, _ = simulate(np.random.default_rng(2), "hier2pl", n_models=5,
                       items_per_benchmark=(5, 5, 5), coverage=1.0)
    inputs = build_inputs(data)
    n_cells = inputs.arrays["cell_model"].size
    cell = np.zeros((1, 200, n_cells))
    rho = np.full((1, 200, inputs.sizes["n_benchmarks"]), 0.95)
    # Model 0 is strong everywhere except one benchmark, where it is at the bottom.
    first = np.nonzero(inputs.arrays["cell_model"] == 0)[0]
    cell[..., first] = 1.5
    cell[..., first[0]] = -2.0
    _, _, prob = complete_abilities(np.random.default_rng(0), cell, rho, inputs,
                                    outlier=np.full((1, 200), 0.05))
    b0 = inputs.arrays["cell_benchmark"][first[0]]
    others = inputs.arrays["cell_benchmark"][first[1:]]
    assert prob[0, :, 0, b0].mean() > 0.5
    assert np.all(prob[0, :, 0, others].mean(axis=0) < 0.2)


def test_the_regular_scale_lets_a_squeezed_benchmark_keep_its_loading():
    """Two strong models that fail benchmark 0 squeeze the other ten there (their
    standardised sd 0.3): with sigma = 1 the outlier density reads that as a low loading,
    with the regular scale sigma = 0.3 the ten keep a high one and the two are outliers."""
    import jax.numpy as jnp

    from bayesirt.models import complete_abilities
    from bayesirt.models.factor import factor_ability_logdensity

    mask = np.ones((12, 3))
    cm, cb = np.nonzero(mask)
    general = np.linspace(-1.5, 1.5, 12)
    x = general[cm] * np.where(cb == 0, 0.3, 1.0)
    x = np.where((cb == 0) & np.isin(cm, [10, 11]), -2.2, x)
    data = {"cell_mask": jnp.asarray(mask), "cell_model": jnp.asarray(cm),
            "cell_benchmark": jnp.asarray(cb)}
    grid = np.linspace(0.05, 0.95, 19)

    def best_loading(sigma0):
        dens = [float(factor_ability_logdensity(
            jnp.asarray(x), jnp.asarray([r, 0.9, 0.9]), data, 12, 3, outlier=jnp.asarray(0.05),
            regular_scale=jnp.asarray([sigma0, 1.0, 1.0]))) for r in grid]
        return grid[int(np.argmax(dens))]

    assert best_loading(1.0) < 0.5
    assert best_loading(0.3) > 0.8
    inputs = build_inputs(simulate(np.random.default_rng(2), "hier2pl", n_models=12,
                                   items_per_benchmark=(5, 5, 5), coverage=1.0)[0])
    order = np.lexsort((inputs.arrays["cell_benchmark"], inputs.arrays["cell_model"]))
    cell = np.zeros((1, 100, cm.size))
    cell[..., order] = x  # the inputs' cells in (model, benchmark) order
    _, _, prob = complete_abilities(np.random.default_rng(0), cell, np.full((1, 100, 3), 0.9),
                                    inputs, outlier=np.full((1, 100), 0.05),
                                    regular_scale=np.full((1, 100, 3), [0.3, 1.0, 1.0]))
    assert prob[0, :, [10, 11], 0].mean() > 0.9
    assert prob[0, :, :10, 0].mean() < 0.1


@pytest.mark.usefixtures("numpyro_lenient")
def test_the_spread_level_form_is_the_same_model(monkeypatch):
    """Written through the common level of the slopes' log-spreads, the log density at the
    same point (L = e - S * mean(z)) is the plain form's: a change of coordinates whose
    Jacobian is 1, not a change of model."""
    import jax
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.infer import init_to_uniform
    from numpyro.infer.util import log_density

    from bayesirt.models import population
    from bayesirt.models.irt import hier2pl

    data, _ = simulate(np.random.default_rng(3), "hier2pl", n_models=12,
                       items_per_benchmark=(8,) * 4, coverage=1.0)
    inputs = build_inputs(data)
    arrays = {k: jnp.asarray(v) for k, v in inputs.arrays.items()}
    kwargs = {"y": jnp.asarray(inputs.response, jnp.float32), **inputs.sizes}
    key = "benchmark_pop_log_sigma_log_discrimination_loc"
    monkeypatch.setattr(population, "SLOPE_SPREAD_LEVEL", False)
    # a point of the plain form: unconstrained values within 0.5 of 0
    traced = handlers.substitute(handlers.seed(hier2pl, jax.random.key(0)),
                                 substitute_fn=init_to_uniform(radius=0.5))
    plain = {name: site["value"] for name, site in
             handlers.trace(traced).get_trace(arrays, **kwargs).items()
             if site["type"] == "sample" and not site["is_observed"]}
    for shift in (-0.7, 0.4):  # points away from the prior's centre
        point = dict(plain)
        point["sigma_log_discrimination_z"] = plain["sigma_log_discrimination_z"] + shift * (
            jnp.arange(4.0) - 1.0)
        point[key] = jnp.asarray(-0.9 + shift)
        monkeypatch.setattr(population, "SLOPE_SPREAD_LEVEL", False)
        lp_plain, _ = log_density(hier2pl, (arrays,), kwargs, point)
        level = dict(point)
        loc = level.pop(key)
        level["sigma_log_discrimination_level"] = loc + point[
            "benchmark_pop_log_sigma_log_discrimination_scale"] * jnp.mean(
            point["sigma_log_discrimination_z"])
        monkeypatch.setattr(population, "SLOPE_SPREAD_LEVEL", True)
        lp_level, trace = log_density(hier2pl, (arrays,), kwargs, level)
        assert trace[key]["type"] == "deterministic"  # L is derived, not sampled
        assert np.isfinite(float(lp_plain))
        np.testing.assert_allclose(float(lp_level), float(lp_plain), rtol=1e-6)
        np.testing.assert_allclose(float(trace[key]["value"]), float(loc), atol=1e-5)


def test_slopes_follow_the_difficulty_rule_when_given_a_threshold(monkeypatch):
    from bayesirt.models import inputs as model_inputs

    minority = np.array([model_inputs.CENTRE_MIN_RESPONSES, 70, 70])
    bench_size = np.array([500, 500, 499])
    items = np.array([model_inputs.CENTRE_MIN_CATEGORY_ITEMS])
    monkeypatch.setattr(model_inputs, "CENTRE_MIN_BENCHMARK_ITEMS_SLOPE", 500)
    masks = model_inputs.parameterisation_masks(minority, bench_size, items)
    assert masks["log_discrimination_centred"].tolist() == [1, 1, 0]


@pytest.mark.usefixtures("numpyro_lenient")  # numpyro's Bernoulli log_prob mixes bool / float
def test_the_anchored_benchmark_mean_is_the_same_model():
    """A benchmark anchored on its one centred category samples w = (nu_a - mu) / sigma_c in
    place of mu: at the same point the log density differs from the plain form's by exactly
    the Jacobian log sigma_c of each anchored benchmark, and ``mu_difficulty`` is mu."""
    import jax
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.infer import init_to_uniform
    from numpyro.infer.util import log_density

    from bayesirt.models.irt import hier2pl
    from bayesirt.models.pins import category_anchors

    data, _ = simulate(np.random.default_rng(5), "hier2pl", n_models=10,
                       items_per_benchmark=(24, 24, 16, 16), coverage=1.0,
                       categories_per_benchmark=(2, 3, 2, 1))
    inputs = build_inputs(data)
    plain = {k: jnp.asarray(v) for k, v in inputs.arrays.items()
             if k not in ("category_anchor", "anchor_position", "benchmark_anchored")}
    slot = inputs.arrays["free_category_slot"]
    # Benchmark 0: one centred category of two (anchored); benchmark 1: two of three
    # centred (not anchored); benchmark 2: none centred.
    centred = np.zeros(slot.size, np.float32)
    centred[np.flatnonzero(slot == 0)[0]] = 1.0
    centred[np.flatnonzero(slot == 1)[:2]] = 1.0
    plain["category_centred"] = jnp.asarray(centred)
    anchors = category_anchors(centred, slot, inputs.arrays["multi_benchmark"], 4)
    assert anchors["benchmark_anchored"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert anchors["category_anchor"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    # Where every category mean of the benchmark is pinned well inside the spread between
    # them, the spread cannot be small and the benchmark is not anchored.
    pins = np.where(slot == 0, 0.1, 2.0)
    assert category_anchors(centred, slot, inputs.arrays["multi_benchmark"], 4, pins) is None
    pins[np.flatnonzero(slot == 0)[1]] = 0.4
    assert category_anchors(centred, slot, inputs.arrays["multi_benchmark"], 4, pins)[
        "benchmark_anchored"].tolist() == [1.0, 0.0, 0.0, 0.0]
    anchored = {**plain, **{k: jnp.asarray(v) for k, v in anchors.items()}}
    kwargs = {"y": jnp.asarray(inputs.response, jnp.float32), **inputs.sizes}
    traced = handlers.substitute(handlers.seed(hier2pl, jax.random.key(1)),
                                 substitute_fn=init_to_uniform(radius=1.5))
    point = {name: site["value"] for name, site in
             handlers.trace(traced).get_trace(plain, **kwargs).items()
             if site["type"] == "sample" and not site["is_observed"]}
    point["sigma_category"] = jnp.asarray([0.4, 1.3, 0.8])  # a Jacobian far from 1
    lp_plain, _ = log_density(hier2pl, (plain,), kwargs, point)
    mu, sigma_c = point.pop("mu_difficulty"), point["sigma_category"]
    nu_anchor = point["category_raw"][0]
    w = (nu_anchor - mu[0]) / sigma_c[0]
    point["mu_difficulty_raw"] = mu.at[0].set(w)
    lp_anchored, trace = log_density(hier2pl, (anchored,), kwargs, point)
    assert trace["mu_difficulty"]["type"] == "deterministic"
    np.testing.assert_allclose(np.asarray(trace["mu_difficulty"]["value"]), np.asarray(mu),
                               rtol=1e-5, atol=1e-5)
    assert np.isfinite(float(lp_plain))
    np.testing.assert_allclose(float(lp_anchored) - float(lp_plain),
                               float(jnp.log(sigma_c[0])), atol=2e-3)


@pytest.mark.usefixtures("numpyro_lenient")  # numpyro's Bernoulli log_prob mixes bool / float
def test_the_item_mean_anchor_is_the_same_model(monkeypatch):
    """The item-mean anchor (ITEM_SPLIT_ANCHOR): a split one-category benchmark samples its items'
    mean e and w = (e - mu) / (s / sqrt(n)) in place of mu; at the same point the log density
    differs by exactly the Jacobian log(s / sqrt(n))."""
    import jax
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.infer import init_to_uniform
    from numpyro.infer.util import log_density

    from bayesirt.models import inputs as model_inputs
    from bayesirt.models.irt import hier2pl

    data, _ = simulate(np.random.default_rng(7), "hier2pl", n_models=40,
                       items_per_benchmark=(30, 30, 25, 25), coverage=1.0)
    monkeypatch.setattr(model_inputs, "ITEM_SPLIT_PIN_RATIO", 1e9)  # split every benchmark
    monkeypatch.setattr(model_inputs, "ITEM_SPLIT_ANCHOR", False)
    plain_inputs = build_inputs(data)
    monkeypatch.setattr(model_inputs, "ITEM_SPLIT_ANCHOR", True)
    anchored_inputs = build_inputs(data)
    anchored = anchored_inputs.arrays["difficulty_split_anchor"]
    assert anchored.tolist() == plain_inputs.arrays["difficulty_split"].tolist() == [1.0] * 4
    kwargs = {"y": jnp.asarray(plain_inputs.response, jnp.float32), **plain_inputs.sizes}
    plain = {k: jnp.asarray(v) for k, v in plain_inputs.arrays.items()}
    traced = handlers.substitute(handlers.seed(hier2pl, jax.random.key(2)),
                                 substitute_fn=init_to_uniform(radius=1.5))
    point = {name: site["value"] for name, site in
             handlers.trace(traced).get_trace(plain, **kwargs).items()
             if site["type"] == "sample" and not site["is_observed"]}
    lp_plain, plain_trace = log_density(hier2pl, (plain,), kwargs, point)
    sigma_b = plain_trace["sigma_difficulty"]["value"]
    mu = point.pop("mu_difficulty")
    e = point["difficulty_raw_group_mean"]
    width = sigma_b / jnp.sqrt(jnp.asarray([30.0, 30.0, 25.0, 25.0]))
    point["mu_difficulty_raw"] = (e - mu) / width
    lp_anchored, trace = log_density(
        hier2pl, ({k: jnp.asarray(v) for k, v in anchored_inputs.arrays.items()},), kwargs,
        point)
    np.testing.assert_allclose(np.asarray(trace["mu_difficulty"]["value"]), np.asarray(mu),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(trace["difficulty"]["value"]),
                               np.asarray(plain_trace["difficulty"]["value"]), atol=1e-4)
    # Compared without the likelihood (the same difficulties, checked above): in float32 its
    # ~2e7 at this far-out point rounds to +-2, so the other sites are summed one by one.
    def prior_part(tr):
        return sum(float(jnp.sum(site["fn"].log_prob(site["value"])))
                   for name, site in tr.items() if site["type"] == "sample" and name != "y")

    assert np.isfinite(float(lp_plain)) and np.isfinite(float(lp_anchored))
    np.testing.assert_allclose(prior_part(trace) - prior_part(plain_trace),
                               float(jnp.sum(jnp.log(width))), atol=5e-3)
