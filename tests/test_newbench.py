"""A benchmark the posterior does not know: population prior, general ability, joint labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from bayesirt.predictive import ItemInfo, PosteriorDraws, predict_pairs
from bayesirt.predictive.draws import POPULATION_VARS

#: The population of benchmarks every draw of the test posteriors holds (exactly).
POP = {
    "difficulty_loc": 0.3, "difficulty_scale": 0.8,
    "log_sigma_difficulty_loc": 0.0, "log_sigma_difficulty_scale": 0.2,
    "log_discrimination_loc": 0.0, "log_discrimination_scale": 0.3,
    "log_sigma_log_discrimination_loc": float(np.log(0.4)),
    "log_sigma_log_discrimination_scale": 0.2,
    "logit_loading_loc": 0.8, "logit_loading_scale": 0.5,
}


def known_world(rng, *, n_models=14, n_draws=400, population=True, general=True):
    """Draws with one known benchmark and general abilities that every draw agrees on."""
    M, J, S = n_models, 10, n_draws
    eta = rng.normal(size=M)
    ones = np.ones((S, 1))
    arrays = dict(
        ability=np.broadcast_to(eta[None, :, None], (S, M, 1)).copy(),
        difficulty=np.broadcast_to(rng.normal(size=J), (S, J)).copy(),
        log_discrimination=np.zeros((S, J)), mu_difficulty=0 * ones, sigma_difficulty=ones,
        mu_log_discrimination=0 * ones, sigma_log_discrimination=0.3 * ones,
        ability_pop_loc=0 * ones, ability_pop_scale=ones, item_benchmark=np.zeros(J, int),
    )
    if general:
        arrays["general_ability"] = np.broadcast_to(eta, (S, M)).copy()
        arrays["loading"] = 0.9 * ones
    if population:
        arrays.update({f"benchmark_pop_{k}": np.full(S, v) for k, v in POP.items()})
    draws = PosteriorDraws.from_arrays(
        model_ids=[f"m{i}" for i in range(M)], item_ids=[f"k{j}" for j in range(J)],
        benchmark_ids=["known"], **arrays)
    return draws, eta


def simulate_new_benchmark(rng, eta, n_items):
    """True parameters of a new benchmark drawn from POP, and every model's responses."""
    mu_b = rng.normal(POP["difficulty_loc"], POP["difficulty_scale"])
    sd_b = np.exp(rng.normal(0.0, 0.2))
    mu_a = rng.normal(0.0, 0.3)
    sd_a = 0.4 * np.exp(rng.normal(0.0, 0.2))
    rho = expit(rng.normal(0.8, 0.5))
    theta = rho * eta + np.sqrt(1 - rho**2) * rng.normal(size=eta.size)
    b = rng.normal(mu_b, sd_b, n_items)
    a = np.exp(rng.normal(mu_a, sd_a, n_items))
    p = expit(a[None, :] * (theta[:, None] - b[None, :]))
    return (rng.random(p.shape) < p).astype(np.int8)


def test_population_is_all_or_nothing():
    rng = np.random.default_rng(0)
    draws, _ = known_world(rng)
    arrays = {n: getattr(draws, n) for n in draws.arrays()}
    arrays.pop(POPULATION_VARS[0])
    with pytest.raises(ValueError, match="population of benchmarks is incomplete"):
        PosteriorDraws.from_arrays(model_ids=draws.model_ids, item_ids=draws.item_ids,
                                   benchmark_ids=draws.benchmark_ids, **arrays)


def test_general_ability_transfers_to_a_new_benchmark():
    """With no label at all, stronger models are predicted stronger on a new benchmark."""
    draws, eta = known_world(np.random.default_rng(1))
    models = list(draws.model_ids)
    p = predict_pairs(draws, models, ["x"] * len(models), new_items={"x": ItemInfo("new")})
    assert np.corrcoef(p, eta)[0, 1] > 0.95
    # Without general abilities (an older posterior) every model gets the same prediction.
    bare, _ = known_world(np.random.default_rng(1), general=False)
    q = predict_pairs(bare, models, ["x"] * len(models), new_items={"x": ItemInfo("new")})
    assert np.ptp(q) < 0.03 and np.ptp(p) > 0.15


def test_own_labels_move_a_model_and_others_labels_move_the_level():
    draws, _ = known_world(np.random.default_rng(2))
    items = [f"x{j}" for j in range(12)]
    new = {i: ItemInfo("new") for i in items}
    target = ["m3", "m5"]
    base = predict_pairs(draws, target, ["x11", "x11"], new_items=new)
    # m3 answers 8 items correctly: its prediction on an item nobody labelled rises; m5's
    # moves far less (only through the benchmark's level).
    own = [("m3", i, 1) for i in items[:8]]
    p = predict_pairs(draws, target, ["x11", "x11"], new_items=new, labels=own)
    assert p[0] - base[0] > 0.1 and abs(p[1] - base[1]) < 0.5 * (p[0] - base[0])
    # Every OTHER model fails 8 items: the benchmark is hard, so m3 and m5 fall too.
    others = [(m, i, 0) for m in draws.model_ids if m not in target for i in items[:8]]
    q = predict_pairs(draws, target, ["x11", "x11"], new_items=new, labels=others)
    assert np.all(base - q > 0.1)


@pytest.mark.filterwarnings("ignore::bayesirt.errors.InputWarning")
def test_predictions_are_a_pure_function_of_the_inputs():
    draws, _ = known_world(np.random.default_rng(3))
    items = [f"x{j}" for j in range(6)]
    new = {i: ItemInfo("new") for i in items}
    labels = [("m1", "x0", 1), ("m2", "x1", 0), ("ghost", "x2", 1), ("m4", "x0", 0)]
    a = predict_pairs(draws, ["m1", "ghost", "m7"], ["x5", "x5", "x0"], new_items=new,
                      labels=labels)
    # Same inputs in another order, more pairs, another unknown model listed first.
    b = predict_pairs(draws, ["aaa", "m7", "m1", "ghost"], ["x3", "x0", "x5", "x5"],
                      new_items=new, labels=labels[::-1])
    assert np.allclose(a, b[[2, 3, 1]], atol=1e-12)
    assert np.all(np.isfinite(b))


def test_two_new_benchmarks_are_conditioned_separately():
    draws, _ = known_world(np.random.default_rng(4))
    new = {f"{b}{j}": ItemInfo("easy" if b == "e" else "hard") for b in "eh" for j in range(3)}
    # Every model right on two items of "easy", wrong on two of "hard"; predict the third.
    labels = ([(m, f"e{j}", 1) for m in draws.model_ids for j in range(2)]
              + [(m, f"h{j}", 0) for m in draws.model_ids for j in range(2)])
    p = predict_pairs(draws, ["m0", "m0"], ["e2", "h2"], new_items=new, labels=labels)
    base = predict_pairs(draws, ["m0", "m0"], ["e2", "h2"], new_items=new)
    assert p[0] - base[0] > 0.15 and base[1] - p[1] > 0.15 and p[0] - p[1] > 0.4


def test_one_ability_models_use_the_general_ability_with_loading_one():
    """A 2PL posterior (one ability everywhere): a new benchmark's ability is that one."""
    rng = np.random.default_rng(5)
    draws, eta = known_world(rng, population=False)
    arrays = {n: getattr(draws, n) for n in draws.arrays()}
    arrays.pop("loading")
    flat = PosteriorDraws.from_arrays(model_ids=draws.model_ids, item_ids=draws.item_ids,
                                      benchmark_ids=draws.benchmark_ids, **arrays)
    models = list(flat.model_ids)
    p = predict_pairs(flat, models, ["x"] * len(models), new_items={"x": ItemInfo("new")})
    assert np.all(np.diff(p[np.argsort(eta)]) > 0)  # exactly monotone in the ability


@pytest.mark.usefixtures("numpyro_lenient")
def test_new_benchmark_predictions_match_a_nuts_refit_with_the_labels(rng_key):
    """The Gibbs conditioning against NUTS on the same model with the labels as data."""
    jax = pytest.importorskip("jax")
    numpyro = pytest.importorskip("numpyro")
    import jax.numpy as jnp
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    rng = np.random.default_rng(7)
    draws, eta = known_world(rng, n_models=12, n_draws=512)
    M, J = eta.size, 24
    y = simulate_new_benchmark(rng, eta, J)
    # Each model labels 4 random items (shared list); every other cell is scored.
    lab = np.zeros((M, J), bool)
    for m in range(M):
        lab[m, rng.choice(J, 4, replace=False)] = True
    lm, lj = np.nonzero(lab)
    sm, sj = np.nonzero(~lab)

    def model(m_idx, j_idx, yy):
        mu_b = numpyro.sample("mu_b", dist.Normal(POP["difficulty_loc"], POP["difficulty_scale"]))
        sd_b = jnp.exp(numpyro.sample("lsd_b", dist.Normal(0.0, 0.2)))
        mu_a = numpyro.sample("mu_a", dist.Normal(0.0, 0.3))
        sd_a = jnp.exp(numpyro.sample("lsd_a", dist.Normal(np.log(0.4), 0.2)))
        rho = jax.nn.sigmoid(numpyro.sample("lr", dist.Normal(0.8, 0.5)))
        with numpyro.plate("m", M):
            eps = numpyro.sample("eps", dist.Normal(0.0, 1.0))
        with numpyro.plate("j", J):
            zb = numpyro.sample("zb", dist.Normal(0.0, 1.0))
            za = numpyro.sample("za", dist.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", rho * jnp.asarray(eta) + jnp.sqrt(1 - rho**2) * eps)
        b = numpyro.deterministic("b", mu_b + sd_b * zb)
        a = numpyro.deterministic("a", jnp.exp(mu_a + sd_a * za))
        numpyro.sample("y", dist.Bernoulli(logits=a[j_idx] * (theta[m_idx] - b[j_idx])), obs=yy)

    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        mcmc = MCMC(NUTS(model), num_warmup=1000, num_samples=2000, num_chains=1,
                    progress_bar=False)
        mcmc.run(rng_key, jnp.asarray(lm), jnp.asarray(lj), jnp.asarray(y[lm, lj], jnp.float32))
    s = {k: np.asarray(v, np.float64) for k, v in mcmc.get_samples().items()}
    p_ref = expit(s["a"][:, sj] * (s["theta"][:, sm] - s["b"][:, sj])).mean(axis=0)

    new = {f"x{j}": ItemInfo("new") for j in range(J)}
    labels = ([f"m{m}" for m in lm], [f"x{j}" for j in lj], y[lm, lj])
    p = predict_pairs(draws, [f"m{m}" for m in sm], [f"x{j}" for j in sj], new_items=new,
                      labels=labels, max_draws=None)
    p0 = predict_pairs(draws, [f"m{m}" for m in sm], [f"x{j}" for j in sj], new_items=new,
                       max_draws=None)

    def log_loss(q):
        t = y[sm, sj]
        return -np.mean(t * np.log(q) + (1 - t) * np.log1p(-q))

    dp = np.abs(p - p_ref).mean()
    assert dp <= 0.02, dp
    assert abs(log_loss(p) - log_loss(p_ref)) <= 0.005
    # And the labels mattered: without them the prediction is clearly further away.
    assert np.abs(p0 - p_ref).mean() > 2 * dp


def test_population_names_agree_with_the_model():
    from bayesirt.models.population import POPULATION_PRIORS
    from bayesirt.posteriors.flat import FLAT_VARIABLES

    names = tuple(f"benchmark_pop_{k}" for k in POPULATION_PRIORS)
    assert POPULATION_VARS == names and set(names) <= set(FLAT_VARIABLES)


@pytest.mark.usefixtures("numpyro_lenient")
def test_a_hier2pl_fit_carries_the_population_and_general_abilities(rng_key):
    """From the sampler to the engine: a real (short) fit predicts a new benchmark."""
    from bayesirt.inference import FitConfig, fit
    from bayesirt.models.simulate import simulate
    from bayesirt.posteriors import flat_arrays, to_datatree

    data, _ = simulate(np.random.default_rng(3), "hier2pl", n_models=10,
                       items_per_benchmark=(15, 15, 15, 15))
    res = fit(rng_key, data, FitConfig(chains=1, warmup=60, draws=40, progress=False))
    draws = PosteriorDraws.from_arrays(**flat_arrays(to_datatree(res)))
    assert draws.has_population and draws.general_ability.shape == (40, 10)
    assert draws.loading.shape == (40, 4) and np.all((draws.loading > 0) & (draws.loading < 1))
    assert np.allclose(draws.general_ability, res.posterior["theta"].reshape(40, 10))
    p = predict_pairs(draws, list(draws.model_ids), ["x"] * 10, new_items={"x": ItemInfo("nb")},
                      labels=[("m000", "x", 1)])
    assert np.all(np.isfinite(p))


def test_a_new_benchmarks_loading_follows_the_tilted_population():
    """With ``loading_uniqueness_power`` the unlabelled new benchmark's loadings are the
    tilted population's quantiles (rejection draws from it agree); without it, the plain
    logit-normal's (a posterior fitted before the tilt reads unchanged)."""
    from bayesirt.predictive.draws import _replace
    from bayesirt.predictive.newbench import NewBenchmarks

    rng = np.random.default_rng(3)
    draws, _ = known_world(rng, n_draws=128)
    empty = (np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0))
    plain = NewBenchmarks(draws, draws.model_ids, None).draw("new", *empty).loading
    tilted_draws = _replace(draws, loading_uniqueness_power=np.ones(128))
    tilted = NewBenchmarks(tilted_draws, draws.model_ids, None).draw("new", *empty).loading
    x = rng.normal(POP["logit_loading_loc"], POP["logit_loading_scale"], 400_000)
    keep = rng.random(x.size) < 1.0 - expit(x) ** 2
    q = np.array([0.25, 0.5, 0.75])
    np.testing.assert_allclose(np.quantile(plain, q), np.quantile(expit(x), q), atol=0.01)
    np.testing.assert_allclose(np.quantile(tilted, q), np.quantile(expit(x[keep]), q),
                               atol=0.01)
    assert np.median(tilted) < np.median(plain) - 0.02


def test_without_a_population_the_moment_matched_loadings_are_not_tilted_again():
    """The fallback normal is fitted to the posterior's loadings, which carry the tilt."""
    from bayesirt.predictive.draws import _replace
    from bayesirt.predictive.newbench import NewBenchmarks

    draws, _ = known_world(np.random.default_rng(4), n_draws=64, population=False)
    tilted = _replace(draws, loading_uniqueness_power=np.ones(64))
    assert not NewBenchmarks(tilted, draws.model_ids, None).uniqueness_power().any()
    with_pop, _ = known_world(np.random.default_rng(4), n_draws=64)
    tilted_pop = _replace(with_pop, loading_uniqueness_power=np.ones(64))
    assert NewBenchmarks(tilted_pop, with_pop.model_ids, None).uniqueness_power().all()


def test_an_outlier_model_breaks_from_its_general_ability_on_a_new_benchmark():
    """With the outlier option a strong model that fails its labels falls further.

    Every model but the strongest answers like its general ability says; the strongest fails
    all of its 3 labels (a model that does not follow the benchmark's answer format).
    """
    rng = np.random.default_rng(7)
    draws, eta = known_world(rng, n_models=12)
    arrays = {n: getattr(draws, n) for n in draws.arrays()}
    robust = PosteriorDraws.from_arrays(
        model_ids=draws.model_ids, item_ids=draws.item_ids, benchmark_ids=draws.benchmark_ids,
        outlier_fraction=np.full(draws.n_draws, 0.05), **arrays)
    items = [f"x{j}" for j in range(7)]
    new = {i: ItemInfo("new") for i in items}
    star = int(np.argmax(eta))
    # An easy benchmark: the others succeed as a 2PL with their general ability says.
    y = rng.random((12, 6)) < expit(1.5 * (eta[:, None] + 1.0))
    labels = [(m, i, int(y[k, j]) if k != star else 0)
              for k, m in enumerate(draws.model_ids) for j, i in enumerate(items[:3])]
    target = list(draws.model_ids)
    plain = predict_pairs(draws, target, ["x6"] * 12, new_items=new, labels=labels)
    mixed = predict_pairs(robust, target, ["x6"] * 12, new_items=new, labels=labels)
    # Measured 0.059 (0.537 -> 0.478) with three labels and a 5% outlier fraction; without
    # the mixture in the runtime the two would agree to Monte Carlo error (< 0.01).
    assert plain[star] - mixed[star] > 0.04
    # The other models' predictions barely change: the outlier no longer drags the loading.
    others = np.arange(12) != star
    assert np.mean(np.abs(plain[others] - mixed[others])) < 0.05
