"""Model registry: names -> NumPyro model functions and their mapping to the shared posterior.

Every model writes, after :func:`contract_posterior`, the variables the predictive engine reads
(``ability`` (model, benchmark), ``difficulty`` and ``log_discrimination`` (item),
``mu_difficulty``, ``sigma_difficulty``, ``mu_log_discrimination``,
``sigma_log_discrimination``, ``ability_pop_loc``, ``ability_pop_scale`` (benchmark), the
general ability ``theta`` (model), and, where the model has them, ``rho`` (benchmark),
``category_offset`` (category), ``embedding_coef`` (benchmark, component), ``guess``
(benchmark) and the population of benchmarks ``benchmark_pop_*`` (scalars)). Raw sampler
sites are kept under their own names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesirt.errors import InputError
from bayesirt.models import population
from bayesirt.models.inputs import ModelInputs, build_inputs
from bayesirt.models.irt import hier2pl, rasch, twopl
from bayesirt.models.population import POPULATION_PRIORS


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes
    ----------
    fn : callable
        The NumPyro model function ``fn(data, *, sizes..., y=None)``.
    description : str
        One line for ``--help`` and reports.
    options : tuple of str
        Model options it accepts (``guess``, ``embedding_components``).
    target_accept : float
        NUTS's default target acceptance probability for this model (``FitConfig`` uses it
        where the caller gives none).
    draws : int
        Default kept draws per chain.
    blocks : bool
        Whether ``fn`` takes ``likelihood="blocks"`` (dense per-benchmark response blocks,
        :mod:`bayesirt.models.blocks`); the sampler then uses them where the data are dense.
    """

    fn: Callable[..., Any]
    description: str
    options: tuple[str, ...] = ()
    target_accept: float = 0.8
    draws: int = 1000
    blocks: bool = False


MODELS: dict[str, ModelSpec] = {
    "rasch": ModelSpec(rasch, "Rasch: one ability per model, global difficulty prior"),
    "2pl": ModelSpec(twopl, "2PL: one ability per model, global item priors"),
    "hier2pl": ModelSpec(
        hier2pl,
        "hierarchical 2PL: benchmark/category item priors, factor-structured abilities per "
        "benchmark",
        ("guess", "embedding_components", "contamination", "metadata", "outliers"),
        # Smaller steps and more draws than NUTS's usual 0.8 x 1,000 (robustness suite,
        # bench/results/robustness_steps.md): at 0.8 every simulated and two real members
        # ended with 11-73 divergences scattered over the chains (with the loadings' tilt
        # squared, 0.99 left none on the real members at 1,000 draws and 5 on one at
        # 2,000), and the slopes' common spread mixes slowly (lag-1 autocorrelation
        # 0.4-0.7), so 1,000 draws left R-hat 1.011 / 1.016 on two real members where 2,000
        # pass. Cost: 2x the leapfrog steps per draw, 1.4x the iterations.
        target_accept=0.99, draws=2000, blocks=True,
    ),
}


def get_model(name: str) -> ModelSpec:
    """Look a model up by name.

    Raises
    ------
    ValueError
        If the name is not registered (the message lists the known names).
    """
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(
            f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}"
        ) from None


# Trailing dims of the raw sites each model samples (chain and draw come first).
SITE_DIMS: dict[str, tuple[str, ...]] = {
    "theta": ("model",),
    "theta_free": ("model",),
    "difficulty": ("item",),
    "log_discrimination_z": ("item",),
    "difficulty_z": ("item",),
    "log_discrimination_raw": ("item",),
    "difficulty_raw": ("item",),
    "difficulty_raw_group_mean": ("benchmark",),
    "difficulty_raw_free": ("item",),
    "log_discrimination_raw_group_mean": ("benchmark",),
    "log_discrimination_raw_group_log_spread2": ("benchmark",),
    "log_discrimination_raw_free": ("item",),
    "log_discrimination": ("item",),
    "mu_difficulty": ("benchmark",),
    "mu_difficulty_z": ("benchmark",),
    "mu_difficulty_raw": ("benchmark",),
    "sigma_difficulty": ("benchmark",),
    "sigma_difficulty_z": ("benchmark",),
    "mu_log_discrimination": ("benchmark",),
    "mu_log_discrimination_z": ("benchmark",),
    "sigma_log_discrimination": ("benchmark",),
    "sigma_log_discrimination_z": ("benchmark",),
    "sigma_log_discrimination_level": (),
    "rho": ("benchmark",),
    "rho_z": ("benchmark",),
    "rho_raw": ("benchmark",),
    "outlier_regular_scale": ("benchmark",),
    "guess": ("benchmark",),
    "sigma_category": ("multi_benchmark",),
    "category_raw": ("free_category",),
    "category_offset_free": ("free_category",),
    "embedding_coef_z": ("benchmark", "component"),
    "embedding_coef": ("benchmark", "component"),
    "embedding_coef_scale": (),
    "ability_cell": ("cell",),
    "leak_probability_cell": ("cell",),
    "outlier_fraction": (),
    "mu_difficulty_global": (),
    "sigma_difficulty_global": (),
    "mu_log_discrimination_global": (),
    "sigma_log_discrimination_global": (),
    **{f"benchmark_pop_{key}": () for key in POPULATION_PRIORS},
    "metadata_coef": ("metadata_feature",),
    "org_scale": (),
    "org_z": ("org",),
    "org_effect": ("org",),
    "ability_residual_scale": (),
}


def complete_abilities(
    rng: np.random.Generator,
    ability_cell: np.ndarray,
    rho: np.ndarray,
    inputs: ModelInputs,
    mean: np.ndarray | None = None,
    tau: np.ndarray | None = None,
    outlier: np.ndarray | None = None,
    regular_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    r"""Fill in abilities of unobserved cells and draw the general ability, per draw.

    Under the one-factor prior with :math:`\eta_m \sim N(\mu_m, \tau^2)`,
    :math:`\eta_m \mid x_{mS} \sim N(v (\mu_m/\tau^2 + B), v)` with
    :math:`v = 1/(1/\tau^2 + \sum_S \rho_k^2/d_k)`, :math:`B = \sum_S \rho_k x_{mk}/d_k`,
    and an unobserved cell is :math:`\rho_k \eta_m + \sqrt{d_k}\,\varepsilon`.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the conditional draws.
    ability_cell : ndarray, shape (chains, draws, n_cells)
    rho : ndarray, shape (chains, draws, n_benchmarks)
    inputs : ModelInputs
    mean : ndarray, shape (chains, draws, n_models), optional
        Prior mean of the general ability (metadata); default 0.
    tau : ndarray, shape (chains, draws), optional
        Its prior sd; default 1.
    outlier : ndarray, shape (chains, draws), optional
        Outlier fraction (the outlier option): each model's outlier configuration is first
        drawn from its exact conditional (:func:`bayesirt.models.factor.outlier_configurations`),
        an outlier cell's loading is then 0 (its ability N(0, 1)).
    regular_scale : ndarray, shape (chains, draws, n_benchmarks), optional
        With ``outlier``: the scale of the regular cells (default 1); a regular cell's
        ability is :math:`\sigma_k(\rho_k\eta_m + \sqrt{d_k}\,\varepsilon)`.

    Returns
    -------
    ability : ndarray, shape (chains, draws, n_models, n_benchmarks)
    general : ndarray, shape (chains, draws, n_models)
    outlier_probability : ndarray, shape (chains, draws, n_models, n_benchmarks), or None
        Each cell's conditional probability of being an outlier in that draw (Rao-
        Blackwellised; unobserved cells: the fraction). None without ``outlier``.
    """
    sizes = inputs.sizes
    n_chains, n_draws = ability_cell.shape[:2]
    mask = inputs.arrays["cell_mask"].astype(bool)
    x = np.zeros((n_chains, n_draws, sizes["n_models"], sizes["n_benchmarks"]))
    x[:, :, inputs.arrays["cell_model"], inputs.arrays["cell_benchmark"]] = ability_cell
    r = rho[:, :, None, :].astype(np.float64)
    prob = None
    scale = 1.0  # per cell: sigma_k where regular, 1 at outliers
    if outlier is not None:
        r, prob, scale = _draw_outliers(rng, x, r, mask, outlier, mean, tau, regular_scale)
    d = 1.0 - r**2
    prec0 = 1.0 if tau is None else 1.0 / np.asarray(tau, np.float64)[..., None] ** 2
    mu = 0.0 if mean is None else np.asarray(mean, np.float64)
    b_sum = np.sum(mask * r * (x / scale) / d, axis=-1) + prec0 * mu
    c_sum = np.sum(mask * r**2 / d, axis=-1)
    var = 1.0 / (prec0 + c_sum)
    general = var * b_sum + np.sqrt(var) * rng.standard_normal(var.shape)
    fill = scale * (r * general[..., None] + np.sqrt(d) * rng.standard_normal(x.shape))
    ability = np.where(mask, x, fill)
    return ability, general, prob


def _draw_outliers(rng, x, r, mask, outlier, mean, tau, regular_scale=None):
    """Draw each model's outlier configuration.

    Returns its loadings (0 at outliers), P(z = 1) per cell, and each cell's scale
    (``regular_scale`` where regular, 1 at outliers).

    Per chain (memory: configurations x draws x models x benchmarks). The configuration's
    log weight is the prior of its indicators plus the model's factor density (numpy twin of
    ``bayesirt.models.factor._factor_terms``).
    """
    from bayesirt.models.factor import outlier_configurations

    z = outlier_configurations(x.shape[-1])  # (C, K)
    r_out = np.empty_like(np.broadcast_to(r, x.shape))
    scale_out = np.ones(x.shape)
    prob = np.empty(x.shape)
    for c in range(x.shape[0]):
        pi = np.asarray(outlier, np.float64)[c][:, None]  # (draws, 1)
        log_w = z.sum(1)[None, :] * np.log(pi) + (1 - z).sum(1)[None, :] * np.log1p(-pi)
        rz = r[c][None] * (1.0 - z[:, None, None, :])  # (C, draws, 1, K)
        xc = x[c][None]
        log_jac = 0.0
        if regular_scale is not None:
            sig = np.asarray(regular_scale, np.float64)[c][None, :, None, :]  # (1, draws, 1, K)
            regular = 1.0 - z[:, None, None, :]
            xc = xc * (regular / sig + z[:, None, None, :])
            log_jac = -np.sum(mask * regular * np.log(sig), axis=-1)
        if mean is not None:
            xc = xc - rz * np.asarray(mean, np.float64)[c][None, :, :, None]
        rt = rz if tau is None else np.asarray(tau, np.float64)[c][None, :, None, None] * rz
        dz = 1.0 - rz**2
        quad_d = np.sum(mask * xc**2 / dz, axis=-1)
        r_dx = np.sum(mask * rt * xc / dz, axis=-1)
        r_dr = np.sum(mask * rt**2 / dz, axis=-1)
        log_det = np.sum(mask * np.log(dz), axis=-1) + np.log1p(r_dr)
        lp = -0.5 * (quad_d - r_dx**2 / (1.0 + r_dr) + log_det) + log_jac  # (C, draws, m)
        lp = lp + log_w.T[:, :, None]
        w = np.exp(lp - lp.max(axis=0, keepdims=True))
        w /= w.sum(axis=0, keepdims=True)
        prob[c] = np.einsum("cdm,ck->dmk", w, z)
        # Inverse-CDF draw of one configuration per (draw, model).
        u = rng.uniform(size=w.shape[1:])
        pick = np.minimum((np.cumsum(w, axis=0) < u[None]).sum(axis=0), z.shape[0] - 1)
        r_out[c] = np.broadcast_to(r[c], x.shape[1:]) * (1.0 - z[pick])
        if regular_scale is not None:
            sig = np.asarray(regular_scale, np.float64)[c][:, None, :]  # (draws, 1, K)
            scale_out[c] = sig * (1.0 - z[pick]) + z[pick]
    return r_out, prob, scale_out


def contract_posterior(
    name: str,
    samples: dict[str, np.ndarray],
    inputs: ModelInputs,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]]]:
    """Map a model's raw draws onto the shared posterior variables.

    Parameters
    ----------
    name : str
        Registry name of the model.
    samples : dict of str to ndarray
        Raw draws, each ``(chains, draws, *site_shape)``.
    inputs : ModelInputs
        The inputs the model was fitted on.
    rng : numpy.random.Generator
        Used only to complete unobserved abilities (``hier2pl``).

    Returns
    -------
    posterior : dict of str to ndarray
        Raw sites (except ``ability_cell``, which ``ability`` replaces, and the sampler
        coordinates of a split, which ``*_raw`` replace) plus the shared
        variables, float32.
    dims : dict of str to tuple of str
        Trailing dims of every returned variable.
    """
    get_model(name)
    k = inputs.sizes["n_benchmarks"]
    out = {key: np.asarray(val) for key, val in samples.items()}
    # Sampler coordinates of population.mixed_normal_split: the free values hold directions
    # the model never reads, and the group means / spreads are unread unit normals where a
    # benchmark does not split; ``<name>_raw`` and ``<name>`` hold what they mean.
    for value_name in ("difficulty", "log_discrimination"):
        for suffix in ("_raw_free", "_raw_group_mean", "_raw_group_log_spread2"):
            out.pop(value_name + suffix, None)
    lead = next(iter(out.values())).shape[:2]

    def per_benchmark(x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x[..., None], (*lead, k)).copy()

    if name in ("rasch", "2pl"):
        theta = out["theta"]
        out["ability"] = np.broadcast_to(theta[..., None], (*theta.shape, k)).copy()
        out["mu_difficulty"] = per_benchmark(out["mu_difficulty_global"])
        out["sigma_difficulty"] = per_benchmark(out["sigma_difficulty_global"])
        if name == "rasch":
            out["log_discrimination"] = np.zeros_like(out["difficulty"])
            out["mu_log_discrimination"] = np.zeros((*lead, k))
            out["sigma_log_discrimination"] = np.zeros((*lead, k))
        else:
            out["mu_log_discrimination"] = per_benchmark(out["mu_log_discrimination_global"])
            out["sigma_log_discrimination"] = per_benchmark(
                out["sigma_log_discrimination_global"]
            )
    else:
        out.pop("ability_cell")
        mean = tau = None
        if "metadata_coef" in out:
            mean = out["metadata_coef"] @ inputs.arrays["model_features"].T.astype(np.float64)
            if "org_effect" in out:
                effect = np.concatenate([out["org_effect"], np.zeros((*lead, 1))], axis=-1)
                mean = mean + effect[..., inputs.arrays["model_org"]]
            tau = out["ability_residual_scale"]
        ability, general, outlier_prob = complete_abilities(
            rng, out.pop("ability_std"), out["rho"], inputs, mean, tau,
            out.get("outlier_fraction"), out.get("outlier_regular_scale"))
        if outlier_prob is not None:
            out["outlier_probability"] = outlier_prob
        # Abilities are standardised per benchmark, so a new model's ability is ~N(0, 1).
        out["ability"] = ability
        out["theta"] = general
        offset = np.zeros((*lead, inputs.sizes["n_categories"]))
        if "category_offset_free" in out:
            offset[..., inputs.arrays["free_category"]] = out.pop("category_offset_free")
        out["category_offset"] = offset
        out["loading_uniqueness_power"] = np.full(lead, population.UNIQUENESS_POWER)
        if "leak_probability_cell" in out:
            # Per (model, benchmark); 0 where a model has no responses (nothing to inflate).
            leak = np.zeros((*lead, inputs.sizes["n_models"], k))
            leak[..., inputs.arrays["cell_model"], inputs.arrays["cell_benchmark"]] = out.pop(
                "leak_probability_cell"
            )
            out["leak_probability"] = leak
    out.setdefault("ability_pop_loc", np.zeros((*lead, k)))
    out.setdefault("ability_pop_scale", np.ones((*lead, k)))

    dims = dict(SITE_DIMS)
    dims.update(
        {
            "ability": ("model", "benchmark"),
            "leak_probability": ("model", "benchmark"),
            "outlier_probability": ("model", "benchmark"),
            "category_offset": ("category",),
            "ability_pop_loc": ("benchmark",),
            "ability_pop_scale": ("benchmark",),
            "loading_uniqueness_power": (),
        }
    )
    out = {key: val.astype(np.float32) for key, val in out.items()}
    return out, {key: dims[key] for key in out}


__all__ = [
    "MODELS",
    "ModelInputs",
    "ModelSpec",
    "build_inputs",
    "complete_abilities",
    "contract_posterior",
    "get_model",
]
