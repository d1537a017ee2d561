"""Synthetic FitResults for tests and benchmarks: the right names, dims and sizes, no NUTS.

Draws are "truth + independent noise" per parameter (a well-mixed posterior), or, with
``broken=True``, chain-specific offsets, random-walk draws, divergences and a random-walk
energy (what 50 warmup steps look like): R-hat >> 1, tiny ESS, low E-BFMI.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_expit

from bayesirt.inference.result import FitResult


def synthetic_fit(
    rng: np.random.Generator,
    *,
    n_models: int = 12,
    n_items: int = 60,
    n_benchmarks: int = 3,
    n_obs: int | None = None,
    chains: int = 2,
    draws: int = 200,
    broken: bool = False,
    log_likelihood: bool = True,
    guess: bool = False,
    dtype: type = np.float32,
) -> FitResult:
    """Build a FitResult that follows the posterior-variable contract.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness.
    n_models, n_items, n_benchmarks : int
        Sizes of the model, (training) item and benchmark dims.
    n_obs : int, optional
        Observed (model, item) cells, drawn without replacement; default 60% of all cells.
    chains, draws : int
        Sampler shape.
    broken : bool, default False
        Make the run fail every convergence check.
    log_likelihood : bool, default True
        Include the pointwise log-likelihood (chains, draws, n_obs).
    guess : bool, default False
        Include a ``guess`` lower asymptote per benchmark.
    dtype : numpy dtype, default float32
        Dtype of the draws.

    Returns
    -------
    FitResult
        With posterior, sample_stats, observed, constant_data and coords.

    Raises
    ------
    ValueError
        If ``n_obs`` exceeds the number of cells or a size is not positive.
    """
    if min(n_models, n_items, n_benchmarks, chains, draws) < 1:
        raise ValueError("all sizes must be >= 1")
    n_cells = n_models * n_items
    n_obs = int(0.6 * n_cells) if n_obs is None else int(n_obs)
    if not 1 <= n_obs <= n_cells:
        raise ValueError(f"n_obs={n_obs} must be in [1, {n_cells}]")
    bench_names = [f"bench{k}" for k in range(n_benchmarks)]
    n_cat = 2 * n_benchmarks
    cat_names = [f"{bench_names[c // 2]}/cat{c % 2}" for c in range(n_cat)]
    item_benchmark = np.sort(rng.integers(0, n_benchmarks, n_items)).astype(np.int32)
    item_category = (2 * item_benchmark + rng.integers(0, 2, n_items)).astype(np.int32)
    category_benchmark = (np.arange(n_cat) // 2).astype(np.int32)
    cells = np.sort(rng.choice(n_cells, size=n_obs, replace=False))
    model_idx = (cells // n_items).astype(np.int32)
    item_idx = (cells % n_items).astype(np.int32)

    truth = {
        "ability": rng.normal(0.0, 1.0, (n_models, n_benchmarks)),
        "difficulty": rng.normal(0.0, 1.0, n_items),
        "log_discrimination": rng.normal(0.0, 0.3, n_items),
        "mu_difficulty": rng.normal(0.0, 0.5, n_benchmarks),
        "sigma_difficulty": rng.uniform(0.8, 1.2, n_benchmarks),
        "mu_log_discrimination": rng.normal(0.0, 0.1, n_benchmarks),
        "sigma_log_discrimination": rng.uniform(0.2, 0.4, n_benchmarks),
        "ability_pop_loc": rng.normal(0.0, 0.3, n_benchmarks),
        "ability_pop_scale": rng.uniform(0.8, 1.2, n_benchmarks),
        "category_offset": rng.normal(0.0, 0.2, n_cat),
    }
    if guess:
        truth["guess"] = rng.uniform(0.05, 0.2, n_benchmarks)
    positive = {"sigma_difficulty", "sigma_log_discrimination", "ability_pop_scale", "guess"}
    dims = {
        "ability": ("model", "benchmark"), "difficulty": ("item",),
        "log_discrimination": ("item",), "category_offset": ("category",),
    }
    posterior = {}
    for name, value in truth.items():
        shape = (chains, draws, *np.shape(value))
        noise = rng.normal(0.0, 0.1, shape)
        if broken:
            # Random walks plus a per-chain shift: what a sampler stuck after 50 warmup
            # steps leaves behind.
            noise = np.cumsum(noise * 0.3, axis=1) + rng.normal(0.0, 1.0, (chains, 1,
                                                                          *np.shape(value)))
        draws_arr = np.asarray(value) + noise
        if name in positive:
            draws_arr = np.abs(draws_arr)
        if name == "guess":
            draws_arr = np.clip(draws_arr, 0.0, 0.5)
        posterior[name] = draws_arr.astype(dtype)
        dims.setdefault(name, ("benchmark",))

    p_true = _probability(truth, model_idx, item_idx, item_benchmark)
    response = (rng.uniform(size=n_obs) < p_true).astype(np.int8)

    shape = (chains, draws)
    diverging = np.zeros(shape, dtype=bool)
    if broken:
        diverging[rng.uniform(size=shape) < 0.05] = True
        energy = np.cumsum(rng.normal(0.0, 1.0, shape), axis=1) + 100.0
    else:
        energy = rng.normal(100.0, 5.0, shape)
    tree_depth = rng.integers(3, 7, shape).astype(np.int64)
    if broken:
        tree_depth[:, ::3] = 10
    sample_stats = {
        "diverging": diverging,
        "tree_depth": tree_depth,
        "n_steps": (2**tree_depth - 1).astype(np.int64),
        "energy": energy.astype(np.float64),
        "step_size": np.full(shape, 0.05),
        "acceptance_rate": rng.uniform(0.6, 1.0, shape),
        "lp": -energy,
    }
    ll = None
    if log_likelihood:
        ll = np.empty((chains, draws, n_obs), dtype=np.float32)
        for c in range(chains):
            for lo in range(0, draws, 50):
                sl = slice(lo, min(draws, lo + 50))
                params = {k: v[c, sl] for k, v in posterior.items()}
                ll[c, sl] = _log_lik_draws(params, model_idx, item_idx, item_benchmark,
                                           response.astype(bool))
    coords = {
        "model": [f"org{m % 4}/model-{m}" for m in range(n_models)],
        "item": [f"{bench_names[item_benchmark[j]]}:{j}" for j in range(n_items)],
        "benchmark": bench_names,
        "category": cat_names,
    }
    return FitResult(
        model_name="synthetic_2pl",
        posterior=posterior,
        dims=dims,
        sample_stats=sample_stats,
        observed={"response": response},
        coords=coords,
        config={"model": "synthetic_2pl", "chains": chains, "warmup": 50 if broken else 500,
                "draws": draws, "seed": 0, "device": "cpu"},
        provenance={"created_at": "2026-01-01T00:00:00+00:00", "fingerprint": "0" * 64,
                    "device": "cpu", "source": "synthetic"},
        max_tree_depth=10,
        log_likelihood=ll,
        constant_data={"model_idx": model_idx, "item_idx": item_idx,
                       "item_benchmark": item_benchmark, "item_category": item_category,
                       "category_benchmark": category_benchmark},
        constant_dims={"model_idx": ("obs",), "item_idx": ("obs",),
                       "item_benchmark": ("item",), "item_category": ("item",),
                       "category_benchmark": ("category",)},
    )


def _probability(params, model_idx, item_idx, item_benchmark) -> np.ndarray:
    """P(correct) for one parameter set (no draw dims)."""
    k = item_benchmark[item_idx]
    eta = np.exp(params["log_discrimination"][item_idx]) * (
        params["ability"][model_idx, k] - params["difficulty"][item_idx]
    )
    p = np.exp(log_expit(eta))
    g = params.get("guess")
    return p if g is None else g[k] + (1 - g[k]) * p


def _log_lik_draws(params, model_idx, item_idx, item_benchmark, y) -> np.ndarray:
    """Log-likelihood for a (draws, ...) parameter set -> (draws, n_obs)."""
    k = item_benchmark[item_idx]
    eta = np.exp(params["log_discrimination"][:, item_idx].astype(np.float64)) * (
        params["ability"][:, model_idx, k] - params["difficulty"][:, item_idx]
    )
    g = params.get("guess")
    if g is None:
        return log_expit(np.where(y, eta, -eta))
    p = g[:, k] + (1 - g[:, k]) * np.exp(log_expit(eta))
    return np.where(y, np.log(p), np.log1p(-p))
