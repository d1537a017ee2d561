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
  :math:`(1 - \rho_k^2)^a` (boundary-avoiding; :func:`uniqueness_tilt`), with weakly
  informative hyperpriors (:data:`POPULATION_PRIORS`); estimated only from at least
  :data:`POPULATION_MIN_BENCHMARKS` benchmarks, fixed (:data:`FIXED_POPULATION`) below.
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
non-centred where they do not, chosen per item from its number of responses, per category
from how tightly its items pin its mean relative to the spread between its benchmark's
categories, slopes only in large benchmarks
(``bayesirt.models.inputs.parameterisation_masks`` says why). Measured: the small set
(7 responses per MMLU-Pro item) needs mostly non-centred items (all-centred left
sigma_difficulty at bulk-ESS ~200 of 2,000 draws); the full set (26-71 responses per item)
mostly centred ones.

The general ability :math:`\eta_m` is integrated out analytically: each model's vector of
benchmark abilities has the multivariate normal prior :math:`N(0, D + \rho\rho^\top)`,
:math:`D = \mathrm{diag}(1 - \rho^2)`, restricted to the benchmarks the model was observed on
(Woodbury identities make this O(K) per model). The sampler therefore sees only centred
abilities that the data pin down (hundreds of items per cell) and the loadings; the
ridge :math:`\eta_m + \delta_{mk} = \text{const}` that made the plain non-centred form mix badly
does not exist. Abilities of unobserved cells and :math:`\eta_m` are drawn afterwards from
their exact conditional distribution (:func:`complete_abilities`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesirt.errors import InputError

LOG_2PI = float(np.log(2.0 * np.pi))
#: The outlier option enumerates 2^K configurations of a model's cells (K benchmarks).
OUTLIER_MAX_BENCHMARKS = 12
#: Beta prior of the fraction of (model, benchmark) cells that are outliers: mean 0.05, 95%
#: below 0.14 -- most cells follow the general ability; a few (a model that fails a
#: benchmark's answer format, a specialist) do not. The same prior as the leak probability.
OUTLIER_FRACTION_PRIOR = (1.0, 19.0)


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
    if guess_obs is None:
        logits = eta
    else:
        # log p and log(1 - p) of p = g + (1 - g) sigmoid(eta), without cancellation.
        log_p = jnp.logaddexp(jnp.log(guess_obs), jnp.log1p(-guess_obs) + jax.nn.log_sigmoid(eta))
        log_q = jnp.log1p(-guess_obs) + jax.nn.log_sigmoid(-eta)
        logits = log_p - log_q
    with numpyro.plate("obs", n_obs):
        numpyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


def standardise_by_group(x, group, count, n_groups, width=None):
    """Standardise ``x`` within groups and return the Jacobian-corrected nuisance density.

    The sampler moves free values ``x``; likelihood and prior see ``u = (x - m_g) / s_g``
    (mean 0, sample sd 1 within each group of two or more). The returned log density
    ``log g(m_g) + log h(s_g) - (n_g - 2) log s_g`` makes (m, s) independent nuisances: the
    last term is the Jacobian of ``x -> (m, s, u)``, so ``u`` keeps exactly the prior put on
    it, whatever ``g`` and ``h`` are. They are chosen for the sampler:
    ``m ~ N(0, w / sqrt(n))``, ``log s ~ N(0, w / sqrt(2 (n - 1)))``, so that moving all of a
    group's values together (shift or stretch) spans about ``w`` per value. Where data pin
    each value to +-0.05 (thousands of items per cell), ``w = 1`` made the shift and stretch
    directions ~20 times longer than any other, so ``w`` is then set near the posterior sd
    of one value (``bayesirt.models.inputs.build_inputs`` says when, and what was measured).

    Parameters
    ----------
    x : Array, shape (n,)
    group : Array of int, shape (n,)
    count : Array, shape (n_groups,)
        Group sizes (float).
    n_groups : int
    width : Array or None, shape (n_groups,)
        ``w`` above per group; None means 1.

    Returns
    -------
    u : Array, shape (n,)
    log_nuisance : Array, shape ()
    """
    standardised = count >= 2
    total = jnp.zeros(n_groups, x.dtype).at[group].add(x)
    shift = jnp.where(standardised, total / jnp.maximum(count, 1.0), 0.0)
    centred = x - shift[group]
    sq = jnp.zeros(n_groups, x.dtype).at[group].add(centred**2)
    scale = jnp.where(standardised, jnp.sqrt(sq / jnp.maximum(count - 1.0, 1.0)), 1.0)
    n_g = jnp.maximum(count, 2.0)
    w = jnp.ones_like(count) if width is None else width
    log_nuisance = (
        dist.Normal(0.0, w / jnp.sqrt(n_g)).log_prob(shift)
        + dist.LogNormal(0.0, w / jnp.sqrt(2.0 * (n_g - 1.0))).log_prob(scale)
        - (count - 2.0) * jnp.log(scale)
    )
    return centred / scale[group], jnp.sum(jnp.where(standardised, log_nuisance, 0.0))


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


def _mixed_normal(name, loc, scale, centred):
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
    "log_sigma_log_discrimination_scale": ("gamma2", 0.0, 0.4),
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
#: priors of each benchmark's parameters). Measured: with 2 benchmarks the estimated
#: population left the centred benchmark level in a funnel at a small population scale (14
#: divergences in 600 draws on a simulation that had none with fixed priors).
POPULATION_MIN_BENCHMARKS = 3
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
            for key, spec in POPULATION_PRIORS.items()}


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


def factor_ability_logdensity(ability_cell, rho, data, n_models, n_benchmarks, mean=None,
                              tau=None, outlier=None):
    r"""Log density of observed-cell abilities under the one-factor prior, eta integrated out.

    With :math:`\eta_m \sim N(\mu_m, \tau^2)` (:math:`\mu_m = 0, \tau = 1` without
    metadata), a model's observed abilities are :math:`N(\rho_S \mu_m, D_S + \tau^2 r_S
    r_S^\top)`.

    Parameters
    ----------
    ability_cell : Array, shape (n_cells,)
        Abilities of the observed (model, benchmark) cells.
    rho : Array, shape (n_benchmarks,)
        Loadings in (0, 1).
    data : dict of str to Array
        ``cell_model``, ``cell_benchmark`` (n_cells,), ``cell_mask`` (n_models, n_benchmarks).
    n_models, n_benchmarks : int
        Static sizes.
    mean : Array or None, shape (n_models,)
        Prior mean of each model's general ability (metadata); None means 0.
    tau : Array or None, shape ()
        Prior sd of the general ability around ``mean``; None means 1.
    outlier : Array or None, shape ()
        Probability that a cell is an outlier (:func:`outlier_configurations`): its ability
        is then N(0, 1), unrelated to the general ability. None: no outliers.

    Returns
    -------
    Array, shape ()
        Sum over models of :math:`\log N(x_m \mid \rho_S\mu_m, D_S + \tau^2 r_S r_S^\top)`
        over the model's observed benchmarks S (Woodbury: O(K) per model); with outliers,
        of that density mixed exactly over every outlier configuration of the model's cells.
    """
    mask = data["cell_mask"]
    x = jnp.zeros((n_models, n_benchmarks), dtype=ability_cell.dtype)
    x = x.at[data["cell_model"], data["cell_benchmark"]].set(ability_cell)
    if outlier is not None:
        z = jnp.asarray(outlier_configurations(n_benchmarks), dtype=x.dtype)  # (C, K)
        # A configuration's prior over ALL K cells: the copies that differ only in a model's
        # unobserved cells have equal densities and prior weights summing to the one weight
        # of its observed cells, so the mixture over C is that over the observed cells.
        log_w = z @ jnp.full(n_benchmarks, jnp.log(outlier)) + (1.0 - z) @ jnp.full(
            n_benchmarks, jnp.log1p(-outlier))
        per_config = _factor_terms(x[None], rho[None, None, :] * (1.0 - z[:, None, :]),
                                   mask[None], None if mean is None else mean[None],
                                   tau)  # (C, n_models)
        return jnp.sum(jax.nn.logsumexp(per_config + log_w[:, None], axis=0))
    return jnp.sum(_factor_terms(x, rho[None, :], mask, mean, tau))


def outlier_configurations(n_benchmarks):
    r"""Every outlier configuration of a model's K cells: 0/1 array (2^K, K), float64.

    With the outlier option a cell's ability is, with probability :math:`\pi`, drawn from
    N(0, 1) instead of :math:`\rho_k\eta_m + \sqrt{1-\rho_k^2}\,\varepsilon` (a model
    that fails one benchmark's format, or a specialist: the benchmark says nothing about its
    general ability). The indicators are summed out exactly, 2^K configurations per model,
    so the sampler sees no discrete variable; K is capped at :data:`OUTLIER_MAX_BENCHMARKS`.
    """
    k = int(n_benchmarks)
    if k > OUTLIER_MAX_BENCHMARKS:
        raise InputError(
            f"the outlier option sums over 2^K outlier configurations per model; K = {k} "
            f"benchmarks is above its limit {OUTLIER_MAX_BENCHMARKS}"
        )
    codes = np.arange(2**k)[:, None]
    return ((codes >> np.arange(k)[None, :]) & 1).astype(np.float64)


def _factor_terms(x, r, mask, mean, tau):
    """Per-model log N of the observed abilities for loadings ``r`` (broadcast to x)."""
    d = 1.0 - r**2
    if mean is not None:
        x = x - r * mean[..., None]
    rt = r if tau is None else tau * r
    quad_d = jnp.sum(mask * x**2 / d, axis=-1)
    r_dx = jnp.sum(mask * rt * x / d, axis=-1)
    r_dr = jnp.sum(mask * rt**2 / d, axis=-1)
    log_det = jnp.sum(mask * jnp.log(d), axis=-1) + jnp.log1p(r_dr)
    n_obs_cells = jnp.sum(mask, axis=-1)
    quad = quad_d - r_dx**2 / (1.0 + r_dr)
    return -0.5 * (quad + log_det + n_obs_cells * LOG_2PI)



def metadata_ability_prior(data, n_orgs, n_features):
    r"""Prior mean and sd of each model's general ability from its metadata.

    :math:`\eta_m \sim N(z_m^\top\beta + \gamma_{o(m)}, \tau^2)`: ``z_m`` the features of
    :mod:`bayesirt.features` (standardised log parameter count, instruct flag, release date,
    each with a missingness indicator), :math:`\beta \sim N(0, 0.5^2)`, organisation
    effects partially pooled, :math:`\gamma_o \sim N(0, \sigma_o^2)` (non-centred: most
    organisations have a handful of models), :math:`\sigma_o \sim N^+(0.5)`, and
    :math:`\tau \sim N^+(1)` (abilities are standardised per benchmark, so the data hold
    :math:`\operatorname{var}(\mu) + \tau^2` near 1).

    Returns
    -------
    mean : Array, shape (n_models,)
    tau : Array, shape ()
    """
    with numpyro.plate("metadata_feature", n_features):
        beta = numpyro.sample("metadata_coef", dist.Normal(0.0, 0.5))
    mean = data["model_features"] @ beta
    if n_orgs:
        sigma_org = numpyro.sample("org_scale", dist.HalfNormal(0.5))
        with numpyro.plate("org", n_orgs):
            org_z = numpyro.sample("org_z", dist.Normal(0.0, 1.0))
        effect = numpyro.deterministic("org_effect", sigma_org * org_z)
        mean = mean + jnp.concatenate([effect, jnp.zeros(1, effect.dtype)])[data["model_org"]]
    tau = numpyro.sample("ability_residual_scale", dist.HalfNormal(1.0))
    return mean, tau


#: Benchmark-level parameters sampled non-centred against the population of benchmarks
#: (``<name>_z ~ N(0, 1)``, the value a deterministic site of the same name); the others
#: are centred. Among ``mu_difficulty``, ``sigma_difficulty``, ``mu_log_discrimination``,
#: ``rho``. Empty by default: the loadings follow the per-benchmark rule of
#: ``bayesirt.models.inputs.LOADING_CENTRE_MIN_LINKED`` instead (every loading non-centred,
#: ``--variant rho-nc``, cost the full small set ESS 696 -> 454), and every benchmark-level
#: parameter non-centred (``--variant bench-nc``) cost 2-4x the leapfrog steps
#: (``bench/results/robustness_pop.md``). A bench lever, not a user option.
BENCHMARK_NONCENTRED: frozenset[str] = frozenset()
_LINKS = {"identity": (lambda x: x, None),
          "exp": (jnp.exp, dist.transforms.ExpTransform()),
          "sigmoid": (jax.nn.sigmoid, dist.transforms.SigmoidTransform())}


def _benchmark_level(name: str, loc, scale, link: str, centred=None):
    """One benchmark-level parameter, ``link^-1(N(loc, scale))`` across benchmarks.

    Centred (site ``name``); or, if ``name`` is in :data:`BENCHMARK_NONCENTRED`,
    non-centred (site ``name + "_z"``); or, given ``centred``, per benchmark (site ``name +
    "_raw"`` on the link scale, see :func:`_mixed_normal`). In the last two ``name`` is a
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
        return numpyro.deterministic(name, inverse(_mixed_normal(f"{name}_raw", loc, scale,
                                                                 centred)))
    if name in BENCHMARK_NONCENTRED:
        raw = "rho_z" if name == "rho" else f"{name}_z"  # rho_z: the name measured before
        z = numpyro.sample(raw, dist.Normal(0.0, 1.0))
        return numpyro.deterministic(name, inverse(loc + scale * z))
    base = dist.Normal(loc, scale)
    return numpyro.sample(name, base if transform is None
                          else dist.TransformedDistribution(base, transform))


#: Power of the uniqueness 1 - rho^2 that tilts the loadings' population (see
#: :func:`uniqueness_tilt`).
UNIQUENESS_POWER = 1.0
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
    y : Array or None, shape (n_obs,)
        Observed responses.
    """
    pop = (benchmark_population() if n_benchmarks >= POPULATION_MIN_BENCHMARKS
           else {k: jnp.asarray(v) for k, v in FIXED_POPULATION.items()})
    with numpyro.plate("benchmark", n_benchmarks):
        # Centred by default: every benchmark's location and spreads rest on dozens to
        # thousands of items, so the data pin them and the population sits above them
        # (non-centred where :data:`BENCHMARK_NONCENTRED` says so; see there).
        mu_b = _benchmark_level("mu_difficulty", pop["difficulty_loc"],
                                pop["difficulty_scale"], "identity")
        # Log-normal, so zero-avoiding as the former Gamma(2, 4): where items have few
        # responses (e.g. 7 per MMLU-Pro item in the small set) the data cannot rule out
        # sigma -> 0, and a half-normal's mass at the boundary made NUTS crawl in log-sigma
        # (measured: R-hat 1.013, bulk-ESS ~480 of 4,000). Items always differ somewhat.
        sigma_b = _benchmark_level("sigma_difficulty", pop["log_sigma_difficulty_loc"],
                                   pop["log_sigma_difficulty_scale"], "exp")
        mu_a = _benchmark_level("mu_log_discrimination", pop["log_discrimination_loc"],
                                pop["log_discrimination_scale"], "identity")
        # Non-centred always: item slopes are thinly pinned, so the spreads are too, and
        # centred they sat in the funnel at a small population scale (small set: 182
        # divergences, at the low end of that scale).
        sigma_a_z = numpyro.sample("sigma_log_discrimination_z", dist.Normal(0.0, 1.0))
        # Per benchmark: centred where enough models link it to others to pin its loading
        # (``bayesirt.models.inputs.LOADING_CENTRE_MIN_LINKED``), else non-centred.
        rho = _benchmark_level("rho", pop["logit_loading_loc"], pop["logit_loading_scale"],
                               "sigmoid", data.get("loading_centred"))
    sigma_a = numpyro.deterministic(
        "sigma_log_discrimination",
        jnp.exp(pop["log_sigma_log_discrimination_loc"]
                + pop["log_sigma_log_discrimination_scale"] * sigma_a_z),
    )
    if UNIQUENESS_POWER:  # (0 = the untilted population; 0 * log(0) would be NaN at rho = 1)
        numpyro.factor("loading_uniqueness_tilt", jnp.sum(
            uniqueness_tilt(rho, pop["logit_loading_loc"], pop["logit_loading_scale"])))
    with numpyro.plate("benchmark", n_benchmarks):
        if guess:
            # Mean 0.05: most benchmarks are free-form; the data must argue for a floor.
            g = numpyro.sample("guess", dist.Beta(jnp.ones(n_benchmarks), 19.0 * jnp.ones(
                n_benchmarks)))

    category_mean = mu_b[data["category_benchmark"]]
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
        # mean (see ``_mixed_normal`` and ``bayesirt.models.inputs.category_pin``).
        with numpyro.plate("free_category", n_free_categories):
            nu = _mixed_normal(
                "category_raw", mu_b[multi][slot], sigma_c[slot], data["category_centred"]
            )
        numpyro.deterministic("category_offset_free", nu - mu_b[multi][slot])
        category_mean = category_mean.at[data["free_category"]].set(nu)

    item_benchmark = data["item_benchmark"]
    prior_mean = category_mean[data["item_category"]]
    if n_components:
        s_beta = numpyro.sample("embedding_coef_scale", dist.HalfNormal(0.5))
        with numpyro.plate("benchmark", n_benchmarks, dim=-2):
            with numpyro.plate("component", n_components, dim=-1):
                beta_z = numpyro.sample("embedding_coef_z", dist.Normal(0.0, 1.0))
        beta = numpyro.deterministic("embedding_coef", s_beta * beta_z)
        prior_mean = prior_mean + jnp.sum(
            beta[item_benchmark] * data["item_embedding_pc"], axis=-1
        )

    with numpyro.plate("item", n_items):
        b = _mixed_normal(
            "difficulty_raw", prior_mean, sigma_b[item_benchmark], data["difficulty_centred"]
        )
        log_a = _mixed_normal(
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
    outlier = (numpyro.sample("outlier_fraction", dist.Beta(*OUTLIER_FRACTION_PRIOR))
               if outliers else None)
    numpyro.factor(
        "ability_prior",
        factor_ability_logdensity(ability_std, rho, data, n_models, n_benchmarks, eta_mean,
                                  eta_sd, outlier)
        + log_nuisance,
    )

    obs_item = data["obs_item"]
    eta = jnp.exp(log_a[obs_item]) * (ability_std[data["obs_cell"]] - b[obs_item])
    guess_obs = g[item_benchmark[obs_item]] if guess else None
    if contamination:
        leak = leak_floor(n_cells)[data["obs_cell"]]
        # Two independent ways to succeed without the ability: 1 - P(neither).
        guess_obs = leak if guess_obs is None else 1.0 - (1.0 - guess_obs) * (1.0 - leak)
    _likelihood(eta, guess_obs, y, n_obs)


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
