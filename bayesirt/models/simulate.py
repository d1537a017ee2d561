"""Simulate response data with known parameters, for recovery tests and calibration checks.

The simulator mirrors each registered model's generative story in numpy and returns the data
as a :class:`bayesirt.data.IRTData` plus the true values under the shared posterior names
(``ability``, ``difficulty``, ``log_discrimination``, ``mu_difficulty``, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesirt.data import IRTData
from bayesirt.errors import InputError
from bayesirt.models import inputs, population
from bayesirt.models.population import (
    FIXED_POPULATION,
    POPULATION_MIN_BENCHMARKS,
    POPULATION_PRIORS,
)


def _population_draw(rng: np.random.Generator, family: str, loc: float, scale: float) -> float:
    """One draw of a population parameter from its hyperprior (``population.population_prior``)."""
    if family == "normal":
        return float(rng.normal(loc, scale))
    if family == "halfnormal":
        return float(abs(rng.normal(0.0, scale)))
    if family == "gamma2":
        return float(rng.gamma(2.0, scale / 2.0))
    raise ValueError(f"unknown population prior family {family!r}")


def _tilted_loadings(rng: np.random.Generator, loc: float, scale: float, n: int) -> np.ndarray:
    """Draw loadings from hier2pl's population: logit-normal tilted by (1 - rho^2)^a.

    Accept x ~ N(loc, scale) with probability (1 - sigmoid(x)^2)^a <= 1: exact draws of the
    tilted density (``bayesirt.models.population.uniqueness_tilt``).
    """
    out = np.empty(0)
    while out.size < n:
        x = rng.normal(loc, scale, 4 * n)
        rho = 1.0 / (1.0 + np.exp(-x))
        keep = rng.random(x.size) < (1.0 - rho**2) ** population.UNIQUENESS_POWER
        out = np.concatenate([out, rho[keep]])
    return out[:n]


def _standardise(x: np.ndarray) -> np.ndarray:
    """Centre and scale to sample sd 1 (ddof=1), as ``hier2pl`` does per benchmark."""
    if x.size < 2:
        return x
    centred = x - x.mean()
    return centred / centred.std(ddof=1)


def simulate(
    rng: np.random.Generator,
    model: str = "hier2pl",
    *,
    n_models: int = 20,
    items_per_benchmark: tuple[int, ...] = (40, 40, 40),
    categories_per_benchmark: tuple[int, ...] | None = None,
    coverage: float = 0.8,
    disjoint_models: bool = False,
    from_prior: bool = False,
) -> tuple[IRTData, dict[str, np.ndarray]]:
    """Draw parameters and responses from one of the registered models.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    model : str
        ``rasch``, ``2pl`` or ``hier2pl``.
    n_models : int
        Number of AI models.
    items_per_benchmark : tuple of int
        Training items per benchmark (one entry per benchmark).
    categories_per_benchmark : tuple of int, optional
        Categories per benchmark (default: one each).
    coverage : float
        Probability that a model is evaluated on a benchmark (every model gets at least one).
    disjoint_models : bool
        Give each model exactly one benchmark (round-robin). Under ``hier2pl`` this makes the
        ability prior exactly simulable (see the models' docstring), which
        simulation-based calibration needs.
    from_prior : bool
        Draw hyperparameters from the model's priors (for calibration) instead of fixed,
        moderate values (for recovery).

    Returns
    -------
    data : IRTData
        All model x item cells of evaluated (model, benchmark) pairs.
    truth : dict of str to ndarray
        True ``ability`` (n_models, n_benchmarks), ``difficulty``, ``log_discrimination``
        (n_items,), and benchmark-level values ``mu_difficulty``, ``sigma_difficulty``,
        ``mu_log_discrimination``, ``sigma_log_discrimination`` (n_benchmarks,), plus
        ``observed_cell`` (n_models, n_benchmarks) bool.

    Raises
    ------
    ValueError
        For an unknown model name or impossible sizes.
    """
    if model not in ("rasch", "2pl", "hier2pl"):
        raise InputError(f"cannot simulate model {model!r}; choose rasch, 2pl or hier2pl")
    n_bench = len(items_per_benchmark)
    if n_bench < 1 or min(items_per_benchmark) < 1 or n_models < 1:
        raise InputError("need at least one model, one benchmark and one item per benchmark")
    cats = categories_per_benchmark or (1,) * n_bench
    if len(cats) != n_bench:
        raise InputError("categories_per_benchmark must have one entry per benchmark")

    # Which (model, benchmark) cells are evaluated.
    if disjoint_models:
        observed = np.zeros((n_models, n_bench), dtype=bool)
        observed[np.arange(n_models), np.arange(n_models) % n_bench] = True
    else:
        observed = rng.random((n_models, n_bench)) < coverage
        empty = ~observed.any(axis=1)
        observed[empty, rng.integers(0, n_bench, size=empty.sum())] = True

    # Benchmark-level hyperparameters.
    if from_prior:
        # hier2pl's prior: the population of benchmarks first, then each benchmark from it.
        if n_bench >= POPULATION_MIN_BENCHMARKS:
            pop = {key: _population_draw(rng, *spec) for key, spec in POPULATION_PRIORS.items()}
        else:  # too few benchmarks to estimate a population: the model fixes it
            pop = dict(FIXED_POPULATION)

        def across(name: str) -> np.ndarray:
            return rng.normal(pop[f"{name}_loc"], pop[f"{name}_scale"], n_bench)

        mu_b = across("difficulty")
        sigma_b = np.exp(across("log_sigma_difficulty"))
        mu_a = across("log_discrimination")
        sigma_a = np.exp(across("log_sigma_log_discrimination"))
        rho = _tilted_loadings(rng, pop["logit_loading_loc"], pop["logit_loading_scale"],
                               n_bench)
        # read through the modules: a bench variant patches the priors for one process
        sigma_c = np.array([_population_draw(rng, *(
            population.CATEGORY_SPREAD_PRIOR_FEW if cats[k] <= inputs.CATEGORY_FEW_MAX
            else population.CATEGORY_SPREAD_PRIOR)) for k in range(n_bench)])
    else:
        mu_b = rng.normal(0.0, 0.7, n_bench)
        sigma_b = rng.uniform(0.8, 1.4, n_bench)
        mu_a = rng.normal(0.3, 0.2, n_bench)
        sigma_a = rng.uniform(0.2, 0.4, n_bench)
        rho = rng.uniform(0.4, 0.8, n_bench)
        sigma_c = rng.uniform(0.3, 0.8, n_bench)
    if model != "hier2pl":
        # One global item prior and one ability per model.
        mu_b[:] = mu_b[0]
        sigma_b[:] = sigma_b[0]
        mu_a[:] = mu_a[0] if model == "2pl" else 0.0
        sigma_a[:] = sigma_a[0] if model == "2pl" else 0.0

    # Abilities.
    if model == "hier2pl":
        general = rng.standard_normal(n_models)
        raw = rho * general[:, None] + np.sqrt(1 - rho**2) * rng.standard_normal(
            (n_models, n_bench)
        )
        ability = raw.copy()
        for k in range(n_bench):
            rows = observed[:, k]
            ability[rows, k] = _standardise(raw[rows, k])
    else:
        # The plain models standardise abilities over all models, so the truth must be too.
        theta = _standardise(rng.standard_normal(n_models))
        ability = np.repeat(theta[:, None], n_bench, axis=1)

    # Items, categories.
    item_ids, item_bench, item_cat, category_ids, category_bench = [], [], [], [], []
    difficulty, log_disc = [], []
    for k, n_items in enumerate(items_per_benchmark):
        n_cat = cats[k] if model == "hier2pl" else 1
        cat_offset = sigma_c[k] * rng.standard_normal(n_cat) if n_cat > 1 else np.zeros(1)
        first_cat = len(category_ids)
        category_ids += [f"b{k}/c{c}" for c in range(n_cat)]
        category_bench += [k] * n_cat
        cat = rng.integers(0, n_cat, size=n_items)
        difficulty.append(mu_b[k] + cat_offset[cat] + sigma_b[k] * rng.standard_normal(n_items))
        log_disc.append(mu_a[k] + sigma_a[k] * rng.standard_normal(n_items))
        item_ids += [f"b{k}:item{j}" for j in range(n_items)]
        item_bench += [k] * n_items
        item_cat += list(first_cat + cat)
    difficulty = np.concatenate(difficulty)
    log_disc = np.concatenate(log_disc)
    item_bench = np.asarray(item_bench, dtype=np.int32)

    # Responses on every item of every evaluated (model, benchmark) cell.
    cell_m, cell_j = np.nonzero(observed[:, item_bench])
    eta = np.exp(log_disc[cell_j]) * (ability[cell_m, item_bench[cell_j]] - difficulty[cell_j])
    response = (rng.random(eta.size) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)

    data = IRTData(
        model_ids=tuple(f"m{i:03d}" for i in range(n_models)),
        item_ids=tuple(item_ids),
        benchmark_ids=tuple(f"b{k}" for k in range(n_bench)),
        category_ids=tuple(category_ids),
        model_idx=cell_m.astype(np.int32),
        item_idx=cell_j.astype(np.int32),
        response=response,
        item_benchmark=item_bench,
        item_category=np.asarray(item_cat, dtype=np.int32),
        category_benchmark=np.asarray(category_bench, dtype=np.int32),
        source=f"simulate({model!r})",
    )
    truth: dict[str, Any] = {
        "ability": ability,
        "difficulty": difficulty,
        "log_discrimination": log_disc,
        "mu_difficulty": mu_b,
        "sigma_difficulty": sigma_b,
        "mu_log_discrimination": mu_a,
        "sigma_log_discrimination": sigma_a,
        "observed_cell": observed,
    }
    return data, truth
