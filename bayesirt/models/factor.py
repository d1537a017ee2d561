r"""Ability priors of ``hier2pl``.

Per-benchmark standardisation, the one-factor prior with the general ability integrated out,
outlier cells, and the metadata prior of the general ability. The maths is in
:mod:`bayesirt.models.irt`'s docstring.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from bayesirt.errors import InputError

LOG_2PI = float(np.log(2.0 * np.pi))
#: The outlier option enumerates 2^K configurations of a model's cells (K benchmarks).
OUTLIER_MAX_BENCHMARKS = 12
#: Beta prior of the fraction of (model, benchmark) cells that are outliers: mean 0.05, 95%
#: below 0.14 -- most cells follow the general ability; a few (a model that fails a
#: benchmark's answer format, a specialist) do not. The same prior as the leak probability.
OUTLIER_FRACTION_PRIOR = (1.0, 19.0)
#: sd of log sigma_k, the regular (non-outlier) cells' scale on a standardised benchmark:
#: weakly informative around 1 (95% within 0.38-2.7).
OUTLIER_REGULAR_SCALE_SD = 0.5
#: Whether the outlier option samples that scale per benchmark. Measured, not adopted
#: (``bench/results/reliability.md``, "The outlier option"): on the small set's test-retest
#: it found bfcl's two format failures in 3 of 6 half fits and moved tau 0.830 -> 0.836
#: (3 seeds), but brought 15-33 divergences per fit (two modes: squeezed-and-unloaded, or
#: outliers-and-loaded).
OUTLIER_REGULAR_SCALE = False


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


def factor_ability_logdensity(ability_cell, rho, data, n_models, n_benchmarks, mean=None,
                              tau=None, outlier=None, regular_scale=None):
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
    regular_scale : Array or None, shape (n_benchmarks,)
        With outliers: the scale :math:`\sigma_k` of a regular cell, whose ability is then
        :math:`\sigma_k(\rho_k\eta_m + \sqrt{1-\rho_k^2}\,\varepsilon)`. None means 1.

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
        regular = 1.0 - z[:, None, :]  # (C, 1, K)
        if regular_scale is None:
            x_config, log_jac = x[None], 0.0
        else:
            # A regular cell x = sigma u with u the unit-scale factor draw: density of u
            # at x / sigma, times 1 / sigma.
            sigma = regular_scale[None, None, :]
            x_config = x[None] * (regular / sigma + z[:, None, :])
            log_jac = -jnp.sum(mask[None] * regular * jnp.log(sigma), axis=-1)
        per_config = _factor_terms(x_config, rho[None, None, :] * regular,
                                   mask[None], None if mean is None else mean[None],
                                   tau) + log_jac  # (C, n_models)
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
