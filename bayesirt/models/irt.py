r"""NumPyro item-response models: plain Rasch and 2PL, and the hierarchical ``hier2pl``.

All models share one likelihood. For response :math:`y_{mj}` of model :math:`m` on item
:math:`j` of benchmark :math:`k = k(j)`,

.. math::

    P(y_{mj} = 1) = g_k + (1 - g_k)\,\operatorname{logit}^{-1}\big(a_j(\theta_{mk} - b_j)\big),

with :math:`g_k = 0` unless the guessing floor is switched on, and :math:`a_j = 1` for Rasch.

``hier2pl``
-----------
* Benchmark level, a population of benchmarks (so that a NEW benchmark has a prior):
  :math:`\mu^b_k \sim N(m_b, s_b)`, :math:`\log\sigma^b_k \sim N(m_{\sigma b}, s_{\sigma b})`,
  :math:`\mu^a_k \sim N(m_a, s_a)`, :math:`\log\sigma^a_k \sim N(m_{\sigma a}, s_{\sigma a})`
  (zero-avoiding), :math:`\operatorname{logit}\rho_k \sim N(m_\rho, s_\rho)` tilted by
  :math:`(1 - \rho_k^2)^a` (boundary-avoiding), with weakly informative hyperpriors; estimated
  only from at least ``POPULATION_MIN_BENCHMARKS`` benchmarks, fixed (``FIXED_POPULATION``)
  below. All of it lives in :mod:`bayesirt.models.population` (``POPULATION_PRIORS``,
  ``uniqueness_tilt``).
* Category level (only in benchmarks with two or more categories, e.g. MMLU-Pro subjects, BFCL
  task types): :math:`\nu_c \sim N(\mu^b_{k(c)}, \sigma^c_{k(c)})`,
  :math:`\sigma^c_k \sim N^+(1)`; elsewhere :math:`\nu_c = \mu^b_k`.
* Items: :math:`b_j \sim N(\nu_{c(j)} + \beta_k^\top z_j, \sigma^b_k)`,
  :math:`\log a_j \sim N(\mu^a_k, \sigma^a_k)`. :math:`z_j` are standardised PCA scores of
  the item embedding, :math:`\beta_k \sim N(0, s_\beta^2)`, :math:`s_\beta \sim N^+(0.5)`
  (optional).
* Abilities: a one-factor model across benchmarks,
  :math:`\theta_{mk} = \rho_k \eta_m + \sqrt{1 - \rho_k^2}\,\varepsilon_{mk}` with
  :math:`\eta_m, \varepsilon_{mk} \sim N(0, 1)` and loadings :math:`\rho_k` on (0, 1)
  (logit-normal across benchmarks, above). This is the brief's :math:`\theta_m + \delta_{mk}`,
  :math:`\delta_{mk} \sim N(0, \tau_k)`, rescaled per benchmark to unit variance:
  :math:`\rho_k = 1/\sqrt{1 + \tau_k^2}`; the benchmark's logit scale lives in :math:`\mu^a_k`.

Identification
--------------
* Location and scale, hard: each benchmark's abilities are standardised over the models
  observed on it (mean 0, sd 1 exactly), so the benchmark's location sits in :math:`\mu^b_k`
  and its logit scale in the discriminations (:math:`\mu^a_k`). Category means are centred on
  :math:`\mu^b_k` hierarchically (no free offset to trade against it).
* Sign: loadings are positive (being good at one benchmark does not predict being bad at
  another), which removes the mirror mode :math:`(\rho, \eta) \to (-\rho, -\eta)`.

Parameterisation (why it mixes)
-------------------------------
Item and category parameters are sampled centred where the data pin them down and
non-centred where they do not, chosen per item difficulty from its number of responses, per
category from how tightly its items pin its mean relative to the spread between its
benchmark's categories; item slopes are never pinned one by one, so never centred
(``bayesirt.models.inputs.parameterisation_masks`` says why). Measured: the small set
(7 responses per MMLU-Pro item) needs mostly non-centred items (all-centred left
sigma_difficulty at bulk-ESS ~200 of 2,000 draws); the full set (26-71 responses per item)
mostly centred ones. Where a benchmark has exactly one centred category, its mean is pinned
only through that category, so the sampler moves the category's mean and the benchmark
mean's offset from it in units of the category spread
(:func:`bayesirt.models.population.anchored_categories`).

The general ability :math:`\eta_m` is integrated out analytically: each model's vector of
benchmark abilities has the multivariate normal prior :math:`N(0, D + \rho\rho^\top)`,
:math:`D = \mathrm{diag}(1 - \rho^2)`, restricted to the benchmarks the model was observed on
(Woodbury identities make this O(K) per model). The sampler therefore sees only centred
abilities that the data pin down (hundreds of items per cell) and the loadings; the
ridge :math:`\eta_m + \delta_{mk} = \text{const}` that made the plain non-centred form mix badly
does not exist. Abilities of unobserved cells and :math:`\eta_m` are drawn afterwards from
their exact conditional distribution (:func:`bayesirt.models.complete_abilities`).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesirt.models import factor, population
from bayesirt.models.blocks import SPARSE_KEY, block_loglik, floor_logits
from bayesirt.models.factor import (
    OUTLIER_FRACTION_PRIOR,
    factor_ability_logdensity,
    metadata_ability_prior,
    standardise_by_group,
)
from bayesirt.models.population import (
    CATEGORY_SPREAD_PRIOR,
    CATEGORY_SPREAD_PRIOR_FEW,
    FIXED_POPULATION,
    POPULATION_MIN_BENCHMARKS,
    anchored_categories,
    benchmark_level,
    benchmark_population,
    mixed_normal,
    mixed_normal_split,
    population_prior,
    uniqueness_tilt,
)


def _likelihood(eta, guess_obs, y, n_obs):
    r"""Bernoulli likelihood of the responses with an optional lower asymptote.

    Parameters
    ----------
    eta : Array, shape (n_obs,)
        Linear predictor :math:`a_j(\\theta_{mk} - b_j)`.
    guess_obs : Array or None, shape (n_obs,)
        Lower asymptote per observation; None means no guessing floor.
    y : Array or None, shape (n_obs,)
        Observed responses (None when sampling from the prior predictive).
    n_obs : int
        Number of observations (plate size).
    """
    logits = floor_logits(eta, guess_obs)
    with numpyro.plate("obs", n_obs):
        numpyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


def _single_ability(data, n_models):
    """One ability per model, standardised over the models (hard location and scale).

    With ``u`` standardised, iid N(0, 1) is constant on the set of standardised vectors, so
    only the nuisance term enters the density.
    """
    theta_free = numpyro.sample(
        "theta_free", dist.ImproperUniform(constraints.real, (), (n_models,))
    )
    group = jnp.zeros(n_models, dtype=jnp.int32)
    count = jnp.full(1, float(n_models), dtype=theta_free.dtype)
    theta, log_nuisance = standardise_by_group(
        theta_free, group, count, 1, data["model_nuisance_width"]
    )
    numpyro.factor("ability_prior", log_nuisance)
    return numpyro.deterministic("theta", theta)


def _plain_irt(data, n_models, n_items, n_obs, y, *, two_param):
    """One ability per model, global item priors; Rasch (a = 1) or 2PL."""
    theta = _single_ability(data, n_models)
    mu_b = numpyro.sample("mu_difficulty_global", dist.Normal(0.0, 3.0))
    sigma_b = numpyro.sample("sigma_difficulty_global", dist.HalfNormal(2.5))
    if two_param:
        mu_a = numpyro.sample("mu_log_discrimination_global", dist.Normal(0.0, 1.0))
        # Zero-avoiding, as in hier2pl (see there).
        sigma_a = numpyro.sample("sigma_log_discrimination_global", dist.Gamma(2.0, 4.0))
    with numpyro.plate("item", n_items):
        z_b = numpyro.sample("difficulty_z", dist.Normal(0.0, 1.0))
        if two_param:
            z_a = numpyro.sample("log_discrimination_z", dist.Normal(0.0, 1.0))
    b = numpyro.deterministic("difficulty", mu_b + sigma_b * z_b)
    obs_item = data["obs_item"]
    eta = theta[data["model_idx"]] - b[obs_item]
    if two_param:
        log_a = numpyro.deterministic("log_discrimination", mu_a + sigma_a * z_a)
        eta = jnp.exp(log_a[obs_item]) * eta
    _likelihood(eta, None, y, n_obs)


def rasch(data, *, n_models, n_items, n_benchmarks, n_obs, y=None, **_unused):
    """Rasch model with one ability per model and a global difficulty prior.

    Parameters
    ----------
    data : dict of str to Array
        ``model_idx`` (n_obs,), ``obs_item`` (n_obs,) (see ``ModelInputs``).
    n_models, n_items, n_benchmarks, n_obs : int
        Static sizes.
    y : Array or None, shape (n_obs,)
        Observed responses.
    """
    _plain_irt(data, n_models, n_items, n_obs, y, two_param=False)


def twopl(data, *, n_models, n_items, n_benchmarks, n_obs, y=None, **_unused):
    """2PL with one ability per model and global item priors (log-normal discrimination).

    Parameters
    ----------
    data : dict of str to Array
        ``model_idx`` (n_obs,), ``obs_item`` (n_obs,) (see ``ModelInputs``).
    n_models, n_items, n_benchmarks, n_obs : int
        Static sizes.
    y : Array or None, shape (n_obs,)
        Observed responses.
    """
    _plain_irt(data, n_models, n_items, n_obs, y, two_param=True)


def hier2pl(
    data,
    *,
    n_models,
    n_items,
    n_benchmarks,
    n_obs,
    n_cells,
    n_free_categories=0,
    n_multi=0,
    n_components=0,
    guess=False,
    contamination=False,
    metadata=False,
    outliers=False,
    n_orgs=0,
    n_features=0,
    likelihood="pointwise",
    y=None,
    **_unused,
):
    """Hierarchical 2PL with benchmark and category priors and factor-structured abilities.

    See the module docstring for the maths, identification and parameterisation.

    Parameters
    ----------
    data : dict of str to Array
        See ``bayesirt.models.inputs.ModelInputs``.
    n_models, n_items, n_benchmarks, n_obs, n_cells : int
        Static sizes (``n_items`` counts training items).
    n_free_categories, n_multi : int
        Number of categories in multi-category benchmarks, and of such benchmarks.
    n_components : int
        PCA components of the item embeddings in the difficulty prior mean (0: none).
    guess : bool
        Whether to add a per-benchmark lower asymptote (guessing floor).
    contamination : bool
        Whether a response may come from a "leaked" process that forces success: each
        observed (model, benchmark) cell has its own leak probability (see
        :func:`leak_floor`), so successes on items the model cannot otherwise solve stop
        inflating its ability.
    metadata : bool
        Whether each model's general ability has a prior mean from its metadata
        (:func:`metadata_ability_prior`); ``n_orgs``, ``n_features`` are then its sizes.
    outliers : bool
        Whether a (model, benchmark) cell's ability may be an outlier, unrelated to the
        general ability (:func:`outlier_configurations`; fraction ``outlier_fraction`` with
        the prior :data:`OUTLIER_FRACTION_PRIOR`).
    likelihood : {"pointwise", "blocks"}
        How the responses' log density is written: one Bernoulli site ``y`` per response,
        or (the sampler's choice where ``data`` holds them) dense per-benchmark blocks
        (:mod:`bayesirt.models.blocks`) plus a ``y`` site for the responses in no block.
        The same posterior.
    y : Array or None, shape (n_obs,)
        Observed responses.
    """
    if likelihood == "blocks" and y is None:
        raise ValueError("likelihood='blocks' conditions on the responses held in data; "
                         "sample from the prior with likelihood='pointwise'")
    pop = (benchmark_population() if n_benchmarks >= POPULATION_MIN_BENCHMARKS
           else {k: jnp.asarray(v) for k, v in FIXED_POPULATION.items()})
    with numpyro.plate("benchmark", n_benchmarks):
        # Centred by default: every benchmark's location and spreads rest on dozens to
        # thousands of items, so the data pin them and the population sits above them
        # (non-centred where ``population.BENCHMARK_NONCENTRED`` says so; see there).
        anchored = data.get("benchmark_anchored")
        if anchored is None:
            mu_b = benchmark_level("mu_difficulty", pop["difficulty_loc"],
                                    pop["difficulty_scale"], "identity")
        else:
            # Where a benchmark is anchored on its one centred category (see below and
            # ``bayesirt.models.inputs.CATEGORY_ANCHOR``), this coordinate is the offset
            # w = (nu_a - mu_k) / sigma_c ~ N(0, 1); elsewhere mu_k itself, centred.
            is_anchored = anchored > 0
            mu_b = numpyro.sample("mu_difficulty_raw", dist.Normal(
                jnp.where(is_anchored, 0.0, pop["difficulty_loc"]),
                jnp.where(is_anchored, 1.0, pop["difficulty_scale"])))
        # Log-normal, so zero-avoiding as the former Gamma(2, 4): where items have few
        # responses (e.g. 7 per MMLU-Pro item in the small set) the data cannot rule out
        # sigma -> 0, and a half-normal's mass at the boundary made NUTS crawl in log-sigma
        # (measured: R-hat 1.013, bulk-ESS ~480 of 4,000). Items always differ somewhat.
        sigma_b = benchmark_level("sigma_difficulty", pop["log_sigma_difficulty_loc"],
                                   pop["log_sigma_difficulty_scale"], "exp")
        mu_a = benchmark_level("mu_log_discrimination", pop["log_discrimination_loc"],
                                pop["log_discrimination_scale"], "identity")
        # Non-centred always: item slopes are thinly pinned, so the spreads are too, and
        # centred they sat in the funnel at a small population scale (small set: 182
        # divergences, at the low end of that scale).
        sigma_a_z = numpyro.sample("sigma_log_discrimination_z", dist.Normal(0.0, 1.0))
        # Per benchmark: centred only where so many models link it to others that they pin
        # its loading at every value the population's spread takes
        # (``bayesirt.models.inputs.LOADING_CENTRE_MIN_LINKED``), else non-centred.
        rho = benchmark_level("rho", pop["logit_loading_loc"], pop["logit_loading_scale"],
                               "sigmoid", data.get("loading_centred"))
    if population.SLOPE_SPREAD_LEVEL and n_benchmarks >= POPULATION_MIN_BENCHMARKS:
        pop["log_sigma_log_discrimination_loc"] = population.spread_level(
            sigma_a_z, pop["log_sigma_log_discrimination_scale"])
    sigma_a = numpyro.deterministic(
        "sigma_log_discrimination",
        jnp.exp(pop["log_sigma_log_discrimination_loc"]
                + pop["log_sigma_log_discrimination_scale"] * sigma_a_z),
    )
    # (UNIQUENESS_POWER 0 = the untilted population; 0 * log(0) would be NaN at rho = 1.)
    if population.UNIQUENESS_POWER:
        numpyro.factor("loading_uniqueness_tilt", jnp.sum(
            uniqueness_tilt(rho, pop["logit_loading_loc"], pop["logit_loading_scale"])))
    with numpyro.plate("benchmark", n_benchmarks):
        if guess:
            # Mean 0.05: most benchmarks are free-form; the data must argue for a floor.
            g = numpyro.sample("guess", dist.Beta(jnp.ones(n_benchmarks), 19.0 * jnp.ones(
                n_benchmarks)))

    if n_multi:
        multi = data["multi_benchmark"]
        with numpyro.plate("multi_benchmark", n_multi):
            sigma_c = numpyro.sample("sigma_category", population_prior(*CATEGORY_SPREAD_PRIOR))
        few = data.get("multi_few_categories")
        if few is not None:  # the few-category prior in place of the default one
            swap = (population_prior(*CATEGORY_SPREAD_PRIOR_FEW).log_prob(sigma_c)
                    - population_prior(*CATEGORY_SPREAD_PRIOR).log_prob(sigma_c))
            numpyro.factor("category_spread_few_prior", jnp.sum(few * swap))
        slot = data["free_category_slot"]
        # Non-centred unless the category's items pin its mean well inside the spread between
        # categories (otherwise the centred form diverges in the funnel at small
        # sigma_category: measured on few-item categories, on a meaningless 2-way split and
        # on 2-5 simulated categories); centred where hundreds of items fix the category
        # mean (see ``population.mixed_normal`` and ``bayesirt.models.inputs.category_pin``).
        if data.get("category_anchor") is None:
            with numpyro.plate("free_category", n_free_categories):
                nu = mixed_normal(
                    "category_raw", mu_b[multi][slot], sigma_c[slot], data["category_centred"]
                )
        else:
            mu_b, nu = anchored_categories(data, mu_b, sigma_c, pop, n_free_categories)
        numpyro.deterministic("category_offset_free", nu - mu_b[multi][slot])
    split_anchor = data.get("difficulty_split_anchor")
    if data.get("benchmark_anchored") is not None and split_anchor is None:
        mu_b = numpyro.deterministic("mu_difficulty", mu_b)
    category_mean = mu_b[data["category_benchmark"]]
    if n_multi:
        category_mean = category_mean.at[data["free_category"]].set(nu)

    item_benchmark = data["item_benchmark"]
    prior_mean = category_mean[data["item_category"]]
    if n_components:
        s_beta = numpyro.sample("embedding_coef_scale", dist.HalfNormal(0.5))
        # Its own plate name: the "benchmark" plate above sits at dim -1, and one name with two
        # dims is an inconsistent plate to the ADVI warm start's AutoNormal (it refused it).
        with numpyro.plate("embedding_benchmark", n_benchmarks, dim=-2):
            with numpyro.plate("component", n_components, dim=-1):
                beta_z = numpyro.sample("embedding_coef_z", dist.Normal(0.0, 1.0))
        beta = numpyro.deterministic("embedding_coef", s_beta * beta_z)
        prior_mean = prior_mean + jnp.sum(
            beta[item_benchmark] * data["item_embedding_pc"], axis=-1
        )

    # Where a benchmark's non-centred items are pinned by their data, their mean (and, for
    # the slopes, their spread) is a coordinate of its own (``population.mixed_normal_split``;
    # which benchmarks: ``bayesirt.models.pins.item_mean_pin``).
    split_b = data.get("difficulty_split")
    split_a = data.get("log_discrimination_split")
    if split_b is not None:
        b = mixed_normal_split(
            "difficulty_raw", prior_mean, sigma_b[item_benchmark], data["difficulty_centred"],
            item_benchmark, sigma_b, n_benchmarks, split_b, "item",
            split_scale=population.DIFFICULTY_SPLIT_SCALE, anchor=split_anchor)
        if split_anchor is not None:
            # The benchmark's mean from its items' mean e and the offset w (the site above):
            # the items x_j = e + (loc_j - mean loc) + deviations never read mu_k, so the
            # w passed in its place cancels (``population.mixed_normal_split``).
            b, e, loc_mean, count = b
            is_split_anchored = split_anchor > 0
            mu_true = e - (loc_mean - mu_b) - sigma_b / jnp.sqrt(jnp.maximum(count, 1.0)) * mu_b
            mu_b = jnp.where(is_split_anchored, mu_true, mu_b)
            numpyro.factor("mu_difficulty_split_anchored_prior", jnp.sum(jnp.where(
                is_split_anchored, dist.Normal(pop["difficulty_loc"], pop["difficulty_scale"])
                .log_prob(mu_b), 0.0)))
            mu_b = numpyro.deterministic("mu_difficulty", mu_b)
    if split_a is not None:
        log_a = mixed_normal_split(
            "log_discrimination_raw", mu_a[item_benchmark], sigma_a[item_benchmark],
            data["log_discrimination_centred"], item_benchmark, sigma_a, n_benchmarks,
            split_a, "item", split_scale=True)
    with numpyro.plate("item", n_items):
        if split_b is None:
            b = mixed_normal("difficulty_raw", prior_mean, sigma_b[item_benchmark],
                             data["difficulty_centred"])
        if split_a is None:
            log_a = mixed_normal(
                "log_discrimination_raw",
                mu_a[item_benchmark],
                sigma_a[item_benchmark],
                data["log_discrimination_centred"],
            )
    b = numpyro.deterministic("difficulty", b)
    log_a = numpyro.deterministic("log_discrimination", log_a)

    # Observed-cell abilities. The sampler moves free values x; the likelihood sees them
    # standardised per benchmark over the models observed on it, u = (x - m_k) / s_k, so it
    # cannot trade a shift or stretch of a benchmark's abilities against that benchmark's
    # difficulty and discrimination means (the soft, prior-only identification that made the
    # plain form mix badly). The density on x is f(u) g(m_k) h(s_k) / s_k^(n_k - 2): the last
    # factor is the Jacobian of x -> (m, s, u), so u has exactly the
    # factor prior f restricted to standardised vectors, and (m, s) are independent
    # unit-scale nuisances that NUTS crosses in a few steps.
    ability_cell = numpyro.sample(
        "ability_cell",
        dist.ImproperUniform(constraints.real, (), (n_cells,)),
    )
    ability_std, log_nuisance = standardise_by_group(
        ability_cell,
        data["cell_benchmark"],
        data["benchmark_cell_count"],
        n_benchmarks,
        data["benchmark_nuisance_width"],
    )
    ability_std = numpyro.deterministic("ability_std", ability_std)
    eta_mean, eta_sd = (metadata_ability_prior(data, n_orgs, n_features) if metadata
                        else (None, None))
    outlier = regular_scale = None
    if outliers:
        outlier = numpyro.sample("outlier_fraction", dist.Beta(*OUTLIER_FRACTION_PRIOR))
        # The standardisation counts a benchmark's outliers in its sd, which squeezes the
        # other models' abilities together (small set, bfcl: two format failures leave the
        # other 12 at sd 0.44, read as a loading 0.1); the regular cells' own scale undoes
        # that. With no outlier it is pinned near 1 by the standardisation itself. Off unless
        # ``factor.OUTLIER_REGULAR_SCALE`` (measured, not adopted: see there).
        if factor.OUTLIER_REGULAR_SCALE:
            regular_scale = numpyro.sample(
                "outlier_regular_scale",
                dist.LogNormal(0.0, factor.OUTLIER_REGULAR_SCALE_SD)
                .expand([n_benchmarks]).to_event(1))
    numpyro.factor(
        "ability_prior",
        factor_ability_logdensity(ability_std, rho, data, n_models, n_benchmarks, eta_mean,
                                  eta_sd, outlier, regular_scale)
        + log_nuisance,
    )

    leak_cell = leak_floor(n_cells) if contamination else None
    rows = None
    if likelihood == "blocks":
        # The same log density, the dense benchmarks as matrices (``bayesirt.models.blocks``):
        # only the sampler uses it; the pointwise log-likelihood (LOO) uses "pointwise".
        numpyro.factor("y_blocks", block_loglik(data, ability_std, b, log_a,
                                                g if guess else None, leak_cell))
        rows = data[SPARSE_KEY]
        if rows.size == 0:
            return
    elif likelihood != "pointwise":
        raise ValueError(f"likelihood must be 'pointwise' or 'blocks', got {likelihood!r}")
    obs_item = data["obs_item"] if rows is None else data["obs_item"][rows]
    obs_cell = data["obs_cell"] if rows is None else data["obs_cell"][rows]
    eta = jnp.exp(log_a[obs_item]) * (ability_std[obs_cell] - b[obs_item])
    guess_obs = g[item_benchmark[obs_item]] if guess else None
    if contamination:
        leak = leak_cell[obs_cell]
        # Two independent ways to succeed without the ability: 1 - P(neither).
        guess_obs = leak if guess_obs is None else 1.0 - (1.0 - guess_obs) * (1.0 - leak)
    if rows is None:
        _likelihood(eta, guess_obs, y, n_obs)
    else:
        _likelihood(eta, guess_obs, None if y is None else y[rows], int(rows.size))


def leak_floor(n_cells):
    r"""Per-cell probability that a response was leaked (forced correct).

    A response of model :math:`m` on an item of benchmark :math:`k` is, with probability
    :math:`\lambda_{mk}`, a success whatever the item (the item or its answer was in the
    model's training data), and otherwise follows the 2PL; so
    :math:`P(y = 1) = \lambda_{mk} + (1 - \lambda_{mk})\,\mathrm{logit}^{-1}(\eta)`. What
    tells a leak from ability is *where* the successes are: ability raises success most on
    items near the model's level, a leak raises it equally on items far above it.

    :math:`\lambda_{mk} \sim \mathrm{Beta}(1, 19)`: mean 0.05, mode 0, 95% below 0.15 —
    most cells are clean and a cell has to show excess successes on hard items to be called
    contaminated. Measured against the looser Beta(0.5, 4.5) (mean 0.1, nearly flat in
    logit between 0.02 and 0.4) on a simulation with three leaked cells: the looser prior
    gave clean cells posterior means up to 0.29 (noise that lowers clean abilities), while
    Beta(1, 19) kept clean cells below 0.06 and put the leaked ones at 0.12-0.23
    (``tests/test_inference.py``; the real-data effect in ``bench/results/reliability.md``).

    Parameters
    ----------
    n_cells : int
        Observed (model, benchmark) cells.

    Returns
    -------
    Array, shape (n_cells,)
    """
    with numpyro.plate("cell", n_cells):
        return numpyro.sample(
            "leak_probability_cell",
            dist.Beta(jnp.ones(n_cells), jnp.full(n_cells, 19.0)),
        )
