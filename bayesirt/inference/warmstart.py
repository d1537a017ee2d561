"""Warm start for NUTS: mean-field ADVI starting points and the initial mass matrix.

``advi_init`` gives every chain a dispersed start and a diagonal inverse mass matrix from the
ADVI scales; ``block_sites``/``split_inverse_mass`` turn that diagonal into numpyro's
structured form when the hyperparameters get a dense block (``FitConfig.mass_matrix``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import init_to_median

from bayesirt.models.population import POPULATION_PRIORS


def advi_init(rng_key, model, arrays, y, chains: int, steps: int, *, progress: bool = False):
    """Find starting points and a diagonal inverse mass matrix by mean-field ADVI.

    Parameters
    ----------
    rng_key : jax.Array
    model : callable
        The model with its static sizes bound.
    arrays : dict of str to Array
        Model data.
    y : Array
        Responses.
    chains : int
        Number of chains; each starts from its own draw of the ADVI approximation (scaled by
        0.5 towards its mean), so chains start dispersed as R-hat needs.
    steps : int
        Adam steps.
    progress : bool
        Show SVI's progress bar.

    Returns
    -------
    init_params : dict of str to Array
        Unconstrained starting values, each with a leading chain axis.
    inverse_mass : Array, shape (n_unconstrained,)
        Diagonal inverse mass matrix, in ``jax.tree_util`` order of the sites (sorted names).
    """
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal
    from numpyro.optim import Adam

    guide = AutoNormal(model, init_loc_fn=init_to_median(num_samples=15), init_scale=0.1)
    svi = SVI(model, guide, Adam(0.02), Trace_ELBO())
    fit_key, jitter_key = jax.random.split(rng_key)
    result = svi.run(fit_key, steps, arrays, y=y, progress_bar=progress, stable_update=True)
    params = result.params
    locs, scales = {}, {}
    for name in sorted(guide._init_locs):
        locs[name] = params[f"{name}_{guide.prefix}_loc"]
        scales[name] = params[f"{name}_{guide.prefix}_scale"]
    keys = jax.random.split(jitter_key, len(locs))
    init_params = {
        name: locs[name][None]
        + 0.5 * scales[name][None] * jax.random.normal(k, (chains, *locs[name].shape))
        for k, name in zip(keys, sorted(locs), strict=True)
    }
    inverse_mass = jnp.concatenate([jnp.ravel(scales[name]) ** 2 for name in sorted(scales)])
    if chains == 1:  # MCMC takes a single chain's init without the chain axis
        init_params = {name: value[0] for name, value in init_params.items()}
    return init_params, inverse_mass


#: Hyperparameter sites that share the dense block of ``mass_matrix="block"``.
BLOCK_SITES = ("mu_difficulty", "mu_difficulty_raw", "sigma_difficulty", "mu_log_discrimination",
               "sigma_log_discrimination", "sigma_log_discrimination_z",
               "sigma_log_discrimination_level", "rho", "rho_z", "rho_raw", "sigma_category",
               "guess",
               "difficulty_raw_group_mean", "log_discrimination_raw_group_mean",
               "log_discrimination_raw_group_log_spread2",
               "embedding_coef_scale", "mu_difficulty_global", "sigma_difficulty_global",
               "mu_log_discrimination_global", "sigma_log_discrimination_global",
               *(f"benchmark_pop_{key}" for key in POPULATION_PRIORS))


def block_sites(model, arrays, y, rng_key) -> tuple[str, ...]:
    """Return the latent sites of ``model`` that are in :data:`BLOCK_SITES`, in that order."""
    from numpyro import handlers
    from numpyro.infer import init_to_uniform

    # Substituted values (uniform in the unconstrained space), since an ImproperUniform
    # site cannot be sampled.
    traced = handlers.substitute(handlers.seed(model, rng_key), substitute_fn=init_to_uniform)
    # Only the site names are read: random values may give non-finite logits, which the
    # distributions' argument checks would refuse.
    with numpyro.validation_enabled(False):
        trace = handlers.trace(traced).get_trace(arrays, y=y)
    latent = {name for name, site in trace.items()
              if site["type"] == "sample" and not site.get("is_observed", False)}
    return tuple(name for name in BLOCK_SITES if name in latent)


def split_inverse_mass(flat, init_params, block: tuple[str, ...], chains: int) -> dict:
    """Split ADVI's flat diagonal (sites in sorted order) into numpyro's structured form.

    Returns ``{block: diag of the block's sites in block order, rest: diag of the others
    in sorted order}``; numpyro turns the block's diagonal into a dense starting matrix.
    """
    # init values carry a leading chain axis when there are several chains
    sizes = {name: int(np.prod(np.shape(value)[1 if chains > 1 else 0:]))
             for name, value in init_params.items()}
    start, pieces = 0, {}
    for name in sorted(init_params):
        pieces[name] = flat[start:start + sizes[name]]
        start += sizes[name]
    rest = tuple(name for name in sorted(init_params) if name not in block)
    out = {block: jnp.concatenate([pieces[n] for n in block])}
    if rest:
        out[rest] = jnp.concatenate([pieces[n] for n in rest])
    return out
