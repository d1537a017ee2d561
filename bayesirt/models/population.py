"""The population of benchmarks: hyperpriors, benchmark-level parameters, the loadings' tilt.

A NEW benchmark's parameters are drawn from the posterior of this population, so its
hyperpriors (:data:`POPULATION_PRIORS`) and the shape of the loadings' population
(:func:`uniqueness_tilt`) are shared by the model (:func:`bayesirt.models.irt.hier2pl`), the
simulator (:mod:`bayesirt.models.simulate`) and, through the saved draws, the prediction
runtime. Also the centred / non-centred sampler of one normal value (:func:`mixed_normal`),
used at every level of the hierarchy, its split form (:func:`mixed_normal_split`), and the
category level of benchmarks anchored on one category (:func:`anchored_categories`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist


def mixed_normal(name, loc, scale, centred):
    r"""Sample :math:`x \sim N(\text{loc}, \text{scale})` centred or non-centred per element.

    Where ``centred`` is 1 the sampler moves :math:`x` itself; where 0 it moves
    :math:`z = (x - \text{loc}) / \text{scale} \sim N(0, 1)`. Both give the same model; they
    differ in geometry. Non-centred suits values the data say little about (the value then
    follows its group's location and scale); centred suits values the data pin down, where a
    standardised offset would have to move with every change of the group's location and
    scale (a direction NUTS crosses only with long trajectories).

    Parameters
    ----------
    name : str
        Sample site name (the raw sampler coordinate).
    loc, scale : Array, shape (n,)
    centred : Array, shape (n,)
        1.0 for centred, 0.0 for non-centred elements.

    Returns
    -------
    Array, shape (n,)
        :math:`x`.
    """
    is_centred = centred > 0
    raw = numpyro.sample(
        name,
        dist.Normal(jnp.where(is_centred, loc, 0.0), jnp.where(is_centred, scale, 1.0)),
    )
    return jnp.where(is_centred, raw, loc + scale * raw)


def mixed_normal_split(name, loc, scale, centred, group, group_scale, n_groups, split, plate,
                       split_scale=False, anchor=None):
    r""":func:`mixed_normal` with the non-centred values' group mean (and spread) split off.

    Non-centred, :math:`x_j = \text{loc}_j + s_g z_j` with :math:`z_j \sim N(0, 1)`: where the
    data pin the :math:`x_j` of a group (a benchmark's items), the group's location can move
    only with all its :math:`z_j` together, a direction as long as the group is large (the
    low ESS of ``mu_difficulty`` on 80-120-item benchmarks, robustness suite); its scale
    :math:`s_g` likewise trades against the spread of the :math:`z_j`. Write the group's
    non-centred :math:`z = \bar z \mathbf 1 + r u` (mean, norm of the deviations, their
    direction: independent, as for any iid normals). Here :math:`\bar z` comes from
    :math:`e_g = \overline{\text{loc}}_g + s_g \bar z \sim N(\overline{\text{loc}}_g,
    s_g / \sqrt{n_g})`, sampled centred: the mean of those :math:`x_j`, which the data pin.
    With ``split_scale``, :math:`r` comes from :math:`\log(s_g r)^2 = 2 \log s_g + \log
    \chi^2_{n_g - 1}`, sampled centred too: the spread of those :math:`x_j`, again what the
    data pin; in log space it is a location family, so no funnel. :math:`u` is the direction
    of the raw values' deviations; their own mean and norm are left to their priors
    (directions the likelihood never sees). The model is unchanged: each :math:`z_j` keeps
    its N(0, 1) law exactly.

    Parameters
    ----------
    name : str
        The raw values as :func:`mixed_normal` names them (here a deterministic site; the
        sampler moves ``<name>_free``); the group means are ``<name>_group_mean``, the
        log squared spreads ``<name>_group_log_spread2``.
    loc, scale : Array, shape (n,)
        ``scale`` must be constant within a group (``group_scale[group]``).
    centred : Array, shape (n,)
        1.0 for centred, 0.0 for non-centred elements (as :func:`mixed_normal`).
    group : Array of int, shape (n,)
    group_scale : Array, shape (n_groups,)
    n_groups : int
    split : Array, shape (n_groups,)
        1.0 where a group splits; elsewhere (and in groups of fewer than 3 non-centred
        values) the plain non-centred form. Centring the mean is right only where the data
        pin it (``bayesirt.models.pins.item_mean_pin``): where they do not, e_g sits in a
        funnel at small s_g.
    plate : str
        Name of the plate over the n elements (opened here, as the group plate must not
        nest in it).
    split_scale : bool
        Whether the spread is split off too.
    anchor : Array or None, shape (n_groups,)
        1.0 where the group's location is written from its mean instead (the default,
        ``bayesirt.models.inputs.ITEM_SPLIT_ANCHOR``): there :math:`e_g` is a flat coordinate
        (its normal density left to the caller, who samples the offset
        :math:`(e_g - \overline{\text{loc}}_g) / (s_g / \sqrt{n_g})` and adds the location's
        prior), and the values read the location only through
        :math:`\text{loc}_j - \overline{\text{loc}}_g`.

    Returns
    -------
    Array, shape (n,)
        With ``anchor``: also ``e`` (n_groups,), ``loc_mean`` (n_groups,) and the counts
        of non-centred values (n_groups,).
    """
    is_centred = centred > 0
    with numpyro.plate(plate, loc.shape[0]):
        raw = numpyro.sample(
            f"{name}_free",
            dist.Normal(jnp.where(is_centred, loc, 0.0), jnp.where(is_centred, scale, 1.0)),
        )
    free = jnp.where(is_centred, 0.0, 1.0)
    count = jax.ops.segment_sum(free, group, n_groups)
    split = (split > 0) & (count >= 3)
    per = 1.0 / jnp.maximum(count, 1.0)
    raw_mean = jax.ops.segment_sum(free * raw, group, n_groups) * per
    loc_mean = jax.ops.segment_sum(free * loc, group, n_groups) * per
    deviation = raw - raw_mean[group]
    # Groups that do not split get fixed unit-scale sites that nothing reads (a scale tied to
    # s_g would couple an unused value to s_g).
    with numpyro.plate(f"{name}_group", n_groups):
        e_law = dist.Normal(jnp.where(split, loc_mean, 0.0),
                            jnp.where(split, group_scale * jnp.sqrt(per), 1.0))
        if anchor is not None:
            e_law = e_law.mask(~(split & (anchor > 0)))
        e = numpyro.sample(f"{name}_group_mean", e_law)
        if split_scale:
            log_spread2 = numpyro.sample(f"{name}_group_log_spread2", dist.TransformedDistribution(
                dist.Gamma(jnp.where(split, 0.5 * (count - 1.0), 1.0), 0.5),
                [dist.transforms.ExpTransform().inv, dist.transforms.AffineTransform(
                    jnp.where(split, 2.0 * jnp.log(group_scale), 0.0), 1.0)]))
    if split_scale:
        norm = jnp.sqrt(jax.ops.segment_sum(free * deviation**2, group, n_groups))
        stretch = jnp.where(split, jnp.exp(0.5 * log_spread2) / group_scale / norm, 1.0)
        deviation = deviation * stretch[group]
    z_mean = jnp.where(split, (e - loc_mean) / group_scale, raw_mean)
    z = deviation + z_mean[group]
    # What the plain form calls ``name``: x centred, z non-centred. The sampler coordinate
    # ``<name>_free`` is dropped from the posterior (bayesirt.models.contract_posterior).
    numpyro.deterministic(name, jnp.where(is_centred, raw, z))
    value = jnp.where(is_centred, raw, loc + scale * z)
    if anchor is not None:
        return value, e, loc_mean, count
    return value


def anchored_categories(data, w_or_mu, sigma_c, pop, n_free_categories):
    r"""Category means where some benchmarks are anchored on their one centred category.

    In an anchored benchmark :math:`k` (exactly one centred category :math:`a`, the others
    non-centred), the sampler moves :math:`\nu_a` and :math:`w = (\nu_a - \mu_k) /
    \sigma^c_k` instead of :math:`\mu_k` and :math:`\nu_a`. The Jacobian of
    :math:`(w, \nu_a) \to (\mu_k, \nu_a)` is :math:`\sigma^c_k`, and
    :math:`N(\nu_a \mid \mu_k, \sigma^c_k)\,\sigma^c_k = N(w \mid 0, 1)`, so the density in
    the new coordinates is :math:`p_{\text{pop}}(\mu_k)\,N(w \mid 0, 1)`: ``w`` keeps a
    unit-normal site, :math:`\nu_a` a flat one (its category site is masked there), and the
    population prior of :math:`\mu_k = \nu_a - \sigma^c_k w` enters as a factor. The model
    is unchanged; only the funnel of a centred :math:`\mu_k` of width :math:`\sigma^c_k`
    around the one category that pins it is gone.

    Parameters
    ----------
    data : dict of str to Array
        ``category_anchor`` (n_free_categories,), ``anchor_position`` (n_multi,),
        ``benchmark_anchored`` (n_benchmarks,), and the category index arrays.
    w_or_mu : Array, shape (n_benchmarks,)
        The ``mu_difficulty_raw`` site: ``w`` where anchored, :math:`\mu_k` elsewhere.
    sigma_c : Array, shape (n_multi,)
    pop : dict
        The population of benchmarks (``difficulty_loc``, ``difficulty_scale``).
    n_free_categories : int

    Returns
    -------
    mu_b : Array, shape (n_benchmarks,)
    nu : Array, shape (n_free_categories,)
        Category means of the free categories.
    """
    multi, slot = data["multi_benchmark"], data["free_category_slot"]
    centred = data["category_centred"] > 0
    is_anchor = data["category_anchor"] > 0
    is_anchored = data["benchmark_anchored"] > 0
    # Centred categories of non-anchored benchmarks lean on mu_k = w_or_mu there; an
    # anchored benchmark's one centred category is the anchor, whose density is masked.
    loc = w_or_mu[multi][slot]
    with numpyro.plate("free_category", n_free_categories):
        raw = numpyro.sample("category_raw", dist.Normal(
            jnp.where(centred, loc, 0.0), jnp.where(centred, sigma_c[slot], 1.0)
        ).mask(~is_anchor))
    slot_anchored = is_anchored[multi]
    nu_anchor = raw[data["anchor_position"]]
    mu_multi = jnp.where(slot_anchored, nu_anchor - sigma_c * w_or_mu[multi], w_or_mu[multi])
    mu_b = w_or_mu.at[multi].set(mu_multi)
    loc_pop = jnp.broadcast_to(pop["difficulty_loc"], mu_b.shape)
    scale_pop = jnp.broadcast_to(pop["difficulty_scale"], mu_b.shape)
    # Only the benchmarks anchored here (a benchmark anchored on its items' mean, a single-
    # category one, gets its prior where that mean is sampled).
    by_category = jnp.zeros_like(is_anchored).at[multi].set(slot_anchored)
    numpyro.factor("mu_difficulty_anchored_prior", jnp.sum(jnp.where(
        by_category, dist.Normal(loc_pop, scale_pop).log_prob(mu_b), 0.0)))
    nu = jnp.where(centred, raw, mu_b[multi][slot] + sigma_c[slot] * raw)
    return mu_b, nu


#: The population of benchmarks: hyperparameter -> its prior (family, loc, scale), see
#: :func:`population_prior`. Each benchmark-level parameter (or its log / logit) is
#: Normal(loc, scale) across benchmarks; a NEW benchmark's parameters are drawn from the
#: posterior of this population. Priors are weakly informative on the scale the parameter
#: lives on: abilities are standardised per benchmark, so difficulties are in ability sds and
#: discriminations are the benchmark's logit scale (log 0 = 1 logit per ability sd).
#: The spreads are Gamma(2) (mean = the third entry), boundary-avoiding: estimated from 3-10
#: benchmarks, a half-normal's mass at 0 let a spread fall into the funnel of the centred
#: benchmark-level values (robustness suite, seed 0: real-small-drop 442 divergences at the
#: low end of the discrimination means' spread, 92 with Gamma(2) of the same mean; a
#: population of benchmarks is never exactly homogeneous). README "Parameterisation".
POPULATION_PRIORS: dict[str, tuple[str, float, float]] = {
    "difficulty_loc": ("normal", 0.0, 2.0),
    "difficulty_scale": ("gamma2", 0.0, 1.6),
    "log_sigma_difficulty_loc": ("normal", 0.0, 1.0),
    "log_sigma_difficulty_scale": ("gamma2", 0.0, 0.4),
    "log_discrimination_loc": ("normal", 0.0, 1.0),
    "log_discrimination_scale": ("gamma2", 0.0, 0.4),
    # Items' log-discrimination spread ~0.5 (the former Gamma(2, 4)'s mean).
    "log_sigma_log_discrimination_loc": ("normal", float(np.log(0.5)), 0.5),
    # How much that spread differs between benchmarks: mean 0.2 (a factor e^0.2 per sd), not
    # 0.4 as the other spreads. Where a benchmark says little about its own slopes (few
    # models; items nobody or everybody solved, whose slopes the data bound only from
    # below), its spread is then pooled towards the others' instead of reaching 2.8 (a 10-
    # model benchmark of sim-unseen-shape, log-slopes of 8 and the divergences there). The
    # two shared sets' spreads are 0.34-0.55 (posterior medians; a log-sd of 0.07 and 0.18);
    # the small set's new-item log-loss unchanged (robustness suite, README
    # "Parameterisation", bench/results/robustness_slopepop.md).
    "log_sigma_log_discrimination_scale": ("gamma2", 0.0, 0.2),
    "logit_loading_loc": ("normal", 0.0, 1.0),
    # Mean 0.8 (a half-normal N+(1)'s). Measured and NOT adopted: N+(0.5) freed the small
    # set's key-0 fit from a Heywood spike but cost a 3-benchmark simulation its mixing
    # (tail-ESS 12 in the recovery test): README "The loadings' population scale".
    "logit_loading_scale": ("gamma2", 0.0, 0.8),
}
#: Prior of a benchmark's spread between its categories' means (family, loc, scale as in
#: :data:`POPULATION_PRIORS`): N+(1) where the benchmark has many categories, and where it
#: has at most ``bayesirt.models.inputs.CATEGORY_FEW_MAX`` (5) the boundary-avoiding
#: Gamma(2) of the same mean (0.8), for the reason the population's spreads are: estimated
#: from 2-5 category means, a half-normal let it fall into the funnel of the category level.
#: Measured (robustness suite, seed 0, Gamma(2) against N+(1)): a random 2-way split of
#: cruxeval_o with bfcl merged to 2 categories 173 -> 41 divergences (R-hat 1.0405 ->
#: 1.0159), MMLU-Pro as 500 + 10 items 115 -> 24, none left at the category level; but on
#: the small set (11 and 14 categories) Gamma(2) lowered the worst bulk-ESS at all three
#: seeds (402 / 420 / 508 -> 283 / 315 / 381), so many categories keep N+(1).
CATEGORY_SPREAD_PRIOR: tuple[str, float, float] = ("halfnormal", 0.0, 1.0)
CATEGORY_SPREAD_PRIOR_FEW: tuple[str, float, float] = ("gamma2", 0.0, 0.8)
#: The hyperpriors before the spreads were made boundary-avoiding (a bench variant).
HALFNORMAL_SPREADS = {"difficulty_scale": 2.0, "log_sigma_difficulty_scale": 0.5,
                      "log_discrimination_scale": 0.5, "log_sigma_log_discrimination_scale": 0.5,
                      "logit_loading_scale": 1.0}


#: A population of benchmarks is estimated only from at least this many benchmarks; with
#: fewer, its hyperparameters are fixed at :data:`FIXED_POPULATION` (weakly informative
#: priors of each benchmark's parameters). Its spreads rest on that many benchmark values:
#: with 2 benchmarks the estimated population left the centred benchmark level in a funnel
#: at a small population scale (14 divergences in 600 draws on a simulation that had none
#: with fixed priors); with 3 (real-small-drop of the robustness suite, seed 0) 53
#: divergences at the low end of the loadings' population scale, 0 with fixed priors
#: (``bench/results/robustness_split.md``).
POPULATION_MIN_BENCHMARKS = 4
FIXED_POPULATION: dict[str, float] = {
    "difficulty_loc": 0.0, "difficulty_scale": 3.0,
    "log_sigma_difficulty_loc": 0.0, "log_sigma_difficulty_scale": 1.0,
    "log_discrimination_loc": 0.0, "log_discrimination_scale": 1.0,
    "log_sigma_log_discrimination_loc": float(np.log(0.5)),
    "log_sigma_log_discrimination_scale": 0.5,
    "logit_loading_loc": 0.0, "logit_loading_scale": 1.5,
}


def benchmark_population():
    r"""Sample the hyperparameters of the population of benchmarks.

    :math:`\mu^b_k \sim N(m_b, s_b)`, :math:`\log\sigma^b_k \sim N(m_{\sigma b},
    s_{\sigma b})`, :math:`\mu^a_k \sim N(m_a, s_a)`, :math:`\log\sigma^a_k \sim
    N(m_{\sigma a}, s_{\sigma a})`, :math:`\operatorname{logit}\rho_k \sim N(m_\rho,
    s_\rho)`; priors in :data:`POPULATION_PRIORS`. Sites are named ``benchmark_pop_<key>``.

    Returns
    -------
    dict of str to Array, shape ()
    """
    return {key: numpyro.sample(f"benchmark_pop_{key}", population_prior(*spec))
            for key, spec in POPULATION_PRIORS.items()
            if not (SLOPE_SPREAD_LEVEL and key == "log_sigma_log_discrimination_loc")}


#: Whether the population's location of the slopes' log-spreads is written through the
#: common level of the benchmarks' log-spreads (:func:`spread_level`). Off: measured on the
#: robustness suite at seed 0 it traded even (R-hat better on three members, worse on
#: three; the level itself is then the slow direction), and on the small set it converged
#: better at seeds 0-2, with new-item log-loss ~0.001 higher at every k (within the
#: seed-to-seed spread) (``bench/results/robustness_slopes.md``). A bench lever.
SLOPE_SPREAD_LEVEL = False

#: Whether a benchmark whose non-centred item difficulties have their mean split off
#: (:func:`mixed_normal_split`) also has their spread split off (``split_scale``): the
#: spread of those difficulties, which the data pin, as the sampler's coordinate, so that
#: the benchmark's ``sigma_difficulty`` no longer sets the prior scale of a pinned mean (the
#: funnel at small ``sigma_difficulty``). A bench lever.
DIFFICULTY_SPLIT_SCALE = False


def spread_level(z, scale):
    r"""Return the population's location of the slopes' log-spreads via their common level.

    :math:`\log s_k = L + S z_k`: the data pin the common level :math:`e = L + S \bar z` of
    the benchmarks' spreads (every item's slope deviation at once), which the non-centred
    form reaches only by moving :math:`L`. The sampler moves :math:`e` itself (site
    ``sigma_log_discrimination_level``, flat, with :math:`L`'s prior as a factor) and
    :math:`L = e - S \bar z` is derived (Jacobian 1), so nothing is centred against
    :math:`S`: no funnel at a small population scale.

    Parameters
    ----------
    z : Array, shape (K,)
        The benchmarks' non-centred coordinates.
    scale : Array, shape ()
        The population scale :math:`S`.

    Returns
    -------
    Array, shape ()
        :math:`L` (deterministic ``benchmark_pop_log_sigma_log_discrimination_loc``).
    """
    key = "log_sigma_log_discrimination_loc"
    level = numpyro.sample("sigma_log_discrimination_level",
                           dist.ImproperUniform(dist.constraints.real, (), ()))
    loc = numpyro.deterministic(f"benchmark_pop_{key}", level - scale * jnp.mean(z))
    numpyro.factor(f"benchmark_pop_{key}_prior", population_prior(*POPULATION_PRIORS[key])
                   .log_prob(loc))
    return loc


def population_prior(family: str, loc: float, scale: float) -> dist.Distribution:
    """Return the hyperprior of one population parameter (an entry of :data:`POPULATION_PRIORS`).

    ``"normal"``: N(loc, scale); ``"halfnormal"``: N+(scale); ``"gamma2"``: Gamma(2, 2 /
    scale), i.e. mean ``scale`` with density vanishing linearly at 0 (a boundary-avoiding
    prior for a spread estimated from few benchmarks).
    """
    if family == "normal":
        return dist.Normal(loc, scale)
    if family == "halfnormal":
        return dist.HalfNormal(scale)
    if family == "gamma2":
        return dist.Gamma(2.0, 2.0 / scale)
    raise ValueError(f"unknown population prior family {family!r}")


#: Benchmark-level parameters sampled non-centred against the population of benchmarks
#: (``<name>_z ~ N(0, 1)``, the value a deterministic site of the same name); the others
#: are centred. Among ``mu_difficulty``, ``sigma_difficulty``, ``mu_log_discrimination``,
#: ``rho``. Empty by default: the loadings follow the per-benchmark rule of
#: ``bayesirt.models.inputs.LOADING_CENTRE_MIN_LINKED`` instead (which now non-centres
#: every loading of the data sets measured; the coordinates of ``--variant rho-nc``), and
#: every benchmark-level parameter non-centred (``--variant bench-nc``) cost 2-4x the
#: leapfrog steps (``bench/results/robustness_pop.md``). A bench lever, not a user option.
BENCHMARK_NONCENTRED: frozenset[str] = frozenset()
_LINKS = {"identity": (lambda x: x, None),
          "exp": (jnp.exp, dist.transforms.ExpTransform()),
          "sigmoid": (jax.nn.sigmoid, dist.transforms.SigmoidTransform())}


def benchmark_level(name: str, loc, scale, link: str, centred=None):
    """One benchmark-level parameter, ``link^-1(N(loc, scale))`` across benchmarks.

    Centred (site ``name``); or, if ``name`` is in :data:`BENCHMARK_NONCENTRED`,
    non-centred (site ``name + "_z"``); or, given ``centred``, per benchmark (site ``name +
    "_raw"`` on the link scale, see :func:`mixed_normal`). In the last two ``name`` is a
    deterministic site. Call inside the benchmark plate. ``link`` is ``identity``, ``exp``
    or ``sigmoid`` (the inverse link).

    Parameters
    ----------
    centred : Array or None, shape (n_benchmarks,)
        1.0 where the benchmark's value is sampled centred, 0.0 non-centred.

    Returns
    -------
    Array, shape (n_benchmarks,)
    """
    inverse, transform = _LINKS[link]
    if centred is not None and name not in BENCHMARK_NONCENTRED:
        return numpyro.deterministic(name, inverse(mixed_normal(f"{name}_raw", loc, scale,
                                                                 centred)))
    if name in BENCHMARK_NONCENTRED:
        raw = "rho_z" if name == "rho" else f"{name}_z"  # rho_z: the name measured before
        z = numpyro.sample(raw, dist.Normal(0.0, 1.0))
        return numpyro.deterministic(name, inverse(loc + scale * z))
    base = dist.Normal(loc, scale)
    return numpyro.sample(name, base if transform is None
                          else dist.TransformedDistribution(base, transform))


#: Power of the uniqueness 1 - rho^2 that tilts the loadings' population (see
#: :func:`uniqueness_tilt`). Squared (density ~ psi^2 at the boundary, like a Gamma(3) on a
#: variance component) since the sampler's steps were made smaller (``hier2pl``'s
#: target_accept 0.99): with power 1, chains whose warm-up adapted small steps settled in the
#: loadings' Heywood corner (rho -> 1; step size 1.6e-6, every draw at the tree-depth limit)
#: on 2 of the small set's 3 seeds; with power 2 all three seeds pass every check and the
#: new-item log-loss is unchanged (bench/results/robustness_steps.md). The one measured cost:
#: the small set's half-split test-retest of theta 0.833 -> 0.818 (reliability.md).
UNIQUENESS_POWER = 2.0
# Gauss-Hermite nodes (probabilists') for the tilt's normaliser: the integrand is smooth.
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(32)
_GH_W = _GH_W / _GH_W.sum()


def log_tilt_normaliser(loc, scale):
    """Return log E[(1 - sigmoid(x)^2)^UNIQUENESS_POWER] for x ~ N(loc, scale), any shape."""
    x = jnp.asarray(loc)[..., None] + jnp.asarray(scale)[..., None] * _GH_X
    r = jax.nn.sigmoid(x)
    return jnp.log(jnp.sum(_GH_W * (1.0 - r**2) ** UNIQUENESS_POWER, axis=-1))


def uniqueness_tilt(rho, loc, scale):
    r"""Log density of the loadings' population tilt: :math:`\psi^a / Z(m_\rho, s_\rho)`.

    The population of loadings is :math:`\operatorname{logit}\rho \sim N(m_\rho, s_\rho)`
    tilted by the uniqueness :math:`\psi = 1 - \rho^2` to the power
    :data:`UNIQUENESS_POWER` and normalised exactly (Gauss-Hermite quadrature), so the
    hyperparameters keep their meaning. Why: the integrated-out general ability gives the
    observed abilities the prior :math:`N(0, D + \rho\rho^\top)`, :math:`D =
    \operatorname{diag}(\psi)`; where the data cannot rule out :math:`\psi_k \to 0` (few
    items per cell) the centred abilities of that benchmark must follow the general one
    within :math:`\sqrt{\psi_k}`: a funnel (a Heywood case) in which chains stopped at
    :math:`\rho = 1.0` with step sizes 1e-4 to 3e-8 (R-hat 3.08 on the small set at one key,
    5.37 on half of its items). The tilt is a boundary-avoiding prior (density 0 at
    :math:`\psi = 0`, like a Gamma(2) on a variance component): a benchmark-specific part
    never vanishes entirely, which is also what we believe of real benchmarks.

    Parameters
    ----------
    rho : Array, shape (K,)
    loc, scale : Array, shape ()

    Returns
    -------
    Array, shape (K,)
    """
    return UNIQUENESS_POWER * jnp.log1p(-rho**2) - log_tilt_normaliser(loc, scale)
