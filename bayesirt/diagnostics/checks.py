"""Posterior predictive checks and PSIS-LOO, computed in numpy from the posterior draws.

Both use the contract likelihood
``P(y=1 | m, j) = g_k + (1 - g_k) * sigmoid(exp(log_discrimination_j) * (ability[m, k] -
difficulty_j))`` on the observed (model_idx, item_idx) pairs, so they work whether or not
the file kept the (possibly multi-GB) ``log_likelihood`` group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from arviz_stats.base.array import array_stats
from scipy import sparse
from scipy.special import log_expit, logsumexp

from bayesirt.errors import InputError

_LIKELIHOOD_VARS = ("ability", "difficulty", "log_discrimination", "guess")
# Elements of one (draws x observations) work array: ~160 MB in float64.
_CHUNK_ELEMENTS = 20_000_000


@dataclass
class Observations:
    """The observed cells and the indices needed to evaluate the likelihood on them.

    Attributes
    ----------
    model_idx, item_idx : ndarray of int, shape (n_obs,)
    response : ndarray of int8, shape (n_obs,)
    item_benchmark : ndarray of int, shape (n_items,)
    """

    model_idx: np.ndarray
    item_idx: np.ndarray
    response: np.ndarray
    item_benchmark: np.ndarray

    @property
    def obs_benchmark(self) -> np.ndarray:
        """Benchmark index of each observation, shape (n_obs,)."""
        return self.item_benchmark[self.item_idx]


def observations(tree: xr.DataTree) -> Observations:
    """Collect the observed cells from ``constant_data`` and ``observed_data``.

    Parameters
    ----------
    tree : xarray.DataTree
        A bayesirt posterior.

    Returns
    -------
    Observations

    Raises
    ------
    ValueError
        If an index array or the responses are missing or their lengths disagree.
    """
    if "constant_data" not in tree.children or "observed_data" not in tree.children:
        raise InputError("posterior has no constant_data/observed_data: cannot check the fit")
    const = tree["constant_data"].to_dataset()
    obs = tree["observed_data"].to_dataset()
    missing = [n for n in ("model_idx", "item_idx", "item_benchmark") if n not in const]
    if missing or "response" not in obs:
        raise InputError(
            f"posterior lacks {missing + ([] if 'response' in obs else ['response'])}"
        )
    out = Observations(
        model_idx=np.asarray(const["model_idx"].values, dtype=np.int64),
        item_idx=np.asarray(const["item_idx"].values, dtype=np.int64),
        response=np.asarray(obs["response"].values, dtype=np.int8),
        item_benchmark=np.asarray(const["item_benchmark"].values, dtype=np.int64),
    )
    n = len(out.response)
    if len(out.model_idx) != n or len(out.item_idx) != n:
        raise InputError(
            f"model_idx ({len(out.model_idx)}), item_idx ({len(out.item_idx)}) and response "
            f"({n}) differ in length"
        )
    return out


def flat_draws(posterior: xr.Dataset, keep: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Likelihood parameters with (chain, draw) flattened into one leading axis.

    Parameters
    ----------
    posterior : xarray.Dataset
        The posterior group.
    keep : ndarray of int, optional
        Flattened draw indices to keep (default all).

    Returns
    -------
    dict of str to ndarray
        ``ability`` (S, model, benchmark), ``difficulty`` (S, item),
        ``log_discrimination`` (S, item) (zeros if absent), ``guess`` (S, benchmark) if
        present.

    Raises
    ------
    ValueError
        If ``ability`` or ``difficulty`` is missing.
    """
    if "ability" not in posterior or "difficulty" not in posterior:
        raise InputError("posterior lacks ability/difficulty: the likelihood cannot be evaluated")
    out = {}
    for name in _LIKELIHOOD_VARS:
        if name not in posterior:
            continue
        da = posterior[name].transpose("chain", "draw", ...)
        arr = np.asarray(da.values)
        arr = arr.reshape((-1, *arr.shape[2:]))
        out[name] = arr if keep is None else arr[keep]
    if "log_discrimination" not in out:
        out["log_discrimination"] = np.zeros_like(out["difficulty"])
    return out


def log_lik(params: dict[str, np.ndarray], obs: Observations, sel: Any = slice(None)
            ) -> np.ndarray:
    """Pointwise log-likelihood of the selected observations for every draw in ``params``.

    Parameters
    ----------
    params : dict
        From :func:`flat_draws` (S leading) or point estimates with a leading axis of 1.
    obs : Observations
    sel : slice or ndarray of int
        Which observations.

    Returns
    -------
    ndarray of float64, shape (S, n_selected)
    """
    m, j = obs.model_idx[sel], obs.item_idx[sel]
    k = obs.item_benchmark[j]
    y = obs.response[sel].astype(bool)
    disc = np.exp(params["log_discrimination"][:, j].astype(np.float64))
    eta = disc * (params["ability"][:, m, k] - params["difficulty"][:, j])
    # log sigmoid(+-eta) directly: exact in both tails, where log(p) would underflow.
    sign = np.where(y, 1.0, -1.0)
    if "guess" not in params:
        return log_expit(sign * eta)
    g = params["guess"][:, k].astype(np.float64)
    p = g + (1.0 - g) * np.exp(log_expit(eta))
    return np.where(y, np.log(p), np.log1p(-p))


def probability(params: dict[str, np.ndarray], obs: Observations, sel: Any = slice(None)
                ) -> np.ndarray:
    """P(correct) of the selected observations per draw, shape (S, n_selected)."""
    m, j = obs.model_idx[sel], obs.item_idx[sel]
    k = obs.item_benchmark[j]
    disc = np.exp(params["log_discrimination"][:, j].astype(np.float64))
    p = np.exp(log_expit(disc * (params["ability"][:, m, k] - params["difficulty"][:, j])))
    if "guess" in params:
        g = params["guess"][:, k].astype(np.float64)
        p = g + (1.0 - g) * p
    return p


@dataclass
class PPCResult:
    """Observed statistics and their posterior predictive replicates.

    Attributes
    ----------
    benchmark_obs : ndarray (n_benchmarks,)
        Observed accuracy per benchmark (NaN where a benchmark has no observation).
    benchmark_rep : ndarray (S, n_benchmarks)
        Replicated accuracy per draw.
    model_obs, model_rep : ndarray (n_models,), (S, n_models)
        The same per model.
    item_hist_obs : ndarray (n_benchmarks, n_bins)
        Histogram of per-item observed accuracy, per benchmark.
    item_hist_rep : ndarray (S, n_benchmarks, n_bins)
        The same for each replicate.
    bins : ndarray (n_bins + 1,)
        Edges of the item-accuracy histogram.
    n_draws : int
        Replicates used.
    """

    benchmark_obs: np.ndarray
    benchmark_rep: np.ndarray
    model_obs: np.ndarray
    model_rep: np.ndarray
    item_hist_obs: np.ndarray
    item_hist_rep: np.ndarray
    bins: np.ndarray
    n_draws: int
    extra: dict[str, Any] = field(default_factory=dict)

    def coverage(self, which: str, prob: float = 0.9) -> float:
        """Fraction of groups whose observed accuracy lies in the central ``prob`` interval."""
        obs = getattr(self, f"{which}_obs")
        rep = getattr(self, f"{which}_rep")
        lo, hi = np.nanquantile(rep, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        ok = np.isfinite(obs)
        return float(np.mean((obs[ok] >= lo[ok]) & (obs[ok] <= hi[ok]))) if ok.any() else np.nan


def _group_matrix(groups: np.ndarray, n_groups: int) -> sparse.csr_matrix:
    n = len(groups)
    return sparse.csr_matrix((np.ones(n), (np.arange(n), groups)), shape=(n, n_groups))


def posterior_predictive(
    posterior: xr.Dataset,
    obs: Observations,
    rng: np.random.Generator,
    *,
    n_draws: int = 200,
    n_bins: int = 10,
) -> PPCResult:
    """Replicate the observed responses from ``n_draws`` evenly spaced posterior draws.

    Parameters
    ----------
    posterior : xarray.Dataset
        The posterior group.
    obs : Observations
        Observed cells.
    rng : numpy.random.Generator
        Draws the replicated responses.
    n_draws : int, default 200
        Number of replicates (thinned evenly over chains x draws).
    n_bins : int, default 10
        Bins of the per-item accuracy histogram on [0, 1].

    Returns
    -------
    PPCResult
    """
    n_total = posterior.sizes["chain"] * posterior.sizes["draw"]
    keep = np.unique(np.round(np.linspace(0, n_total - 1, min(n_draws, n_total))).astype(int))
    params = flat_draws(posterior, keep)
    n_models = params["ability"].shape[1]
    n_bench = params["ability"].shape[2]
    n_items = len(obs.item_benchmark)
    n_obs = len(obs.response)
    bench_obs_idx = obs.obs_benchmark
    mats = {
        "benchmark": _group_matrix(bench_obs_idx, n_bench),
        "model": _group_matrix(obs.model_idx, n_models),
        "item": _group_matrix(obs.item_idx, n_items),
    }
    y = obs.response.astype(np.float64)
    counts = {k: np.asarray(m.sum(axis=0)).ravel() for k, m in mats.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = {k: (y @ m) / counts[k] for k, m in mats.items()}
    reps = {k: np.empty((len(keep), m.shape[1])) for k, m in mats.items()}
    step = max(1, _CHUNK_ELEMENTS // max(1, n_obs))
    for lo in range(0, len(keep), step):
        sub = {k: v[lo : lo + step] for k, v in params.items()}
        y_rep = (rng.uniform(size=(sub["ability"].shape[0], n_obs)) < probability(sub, obs))
        y_rep = y_rep.astype(np.float64)
        for k, m in mats.items():
            with np.errstate(invalid="ignore", divide="ignore"):
                reps[k][lo : lo + step] = np.asarray(m.T @ y_rep.T).T / counts[k]
    bins = np.linspace(0.0, 1.0, n_bins + 1)
    item_bench = obs.item_benchmark
    seen = counts["item"] > 0

    def hist(acc: np.ndarray) -> np.ndarray:
        # Bin index per item, then one bincount over (benchmark, bin) pairs.
        b = np.clip((acc * n_bins).astype(int), 0, n_bins - 1)
        flat = item_bench[seen] * n_bins + b[seen]
        return np.bincount(flat, minlength=n_bench * n_bins).reshape(n_bench, n_bins)

    item_hist_rep = np.stack([hist(row) for row in np.nan_to_num(reps["item"])])
    return PPCResult(
        benchmark_obs=observed["benchmark"],
        benchmark_rep=reps["benchmark"],
        model_obs=observed["model"],
        model_rep=reps["model"],
        item_hist_obs=hist(np.nan_to_num(observed["item"])),
        item_hist_rep=item_hist_rep,
        bins=bins,
        n_draws=len(keep),
    )


def pareto_k_summary(k: np.ndarray, n_samples: int) -> dict[str, Any]:
    """Count Pareto k values in the usual bands (good <= threshold < 1 <= very bad).

    Parameters
    ----------
    k : ndarray
        Pareto k estimates.
    n_samples : int
        Posterior draws S; the good threshold is min(1 - 1/log10(S), 0.7).

    Returns
    -------
    dict
        ``threshold``, ``good``, ``bad``, ``very_bad`` counts and ``max``.
    """
    k = np.asarray(k, dtype=float)
    thr = float(min(1 - 1 / np.log10(n_samples), 0.7))
    return {
        "threshold": thr,
        "good": int(np.sum(k <= thr)),
        "bad": int(np.sum((k > thr) & (k <= 1))),
        "very_bad": int(np.sum(k > 1)),
        "max": float(np.nanmax(k)) if k.size else float("nan"),
        "n": int(k.size),
    }


def compute_loo(
    tree: xr.DataTree,
    obs: Observations,
    rng: np.random.Generator,
    *,
    r_eff: float = 1.0,
    full_max: int = 50_000,
    subsample: int = 2_000,
) -> dict[str, Any]:
    """PSIS-LOO: exact for small data, subsampled (difference estimator) for large data.

    Up to ``full_max`` observations, every observation's PSIS-LOO term is computed (from
    the stored log-likelihood when the file has it). Above it, the Magnusson et al. (2019)
    difference estimator is used, as in ``arviz_stats.loo_subsample(method="plpd")``:
    the point log predictive density at the posterior mean approximates every term, and
    exact PSIS-LOO terms on a simple random subsample of ``subsample`` observations
    correct it. The subsample's per-draw log-likelihood is evaluated from the posterior
    draws, so the multi-GB ``log_likelihood`` group is never read.

    Parameters
    ----------
    tree : xarray.DataTree
        The posterior.
    obs : Observations
        Observed cells.
    rng : numpy.random.Generator
        Picks the subsample.
    r_eff : float, default 1.0
        Relative efficiency of the draws for PSIS.
    full_max : int, default 50_000
        Largest n_obs for exact LOO.
    subsample : int, default 2_000
        Subsample size for large data.

    Returns
    -------
    dict
        ``elpd_loo``, ``se``, ``p_loo``, ``method`` ("psis" or "psis-subsample"),
        ``subsample_size``, ``subsampling_se`` (subsample only), ``pareto_k``
        (see :func:`pareto_k_summary`), ``n_obs``, ``n_samples``, ``loglik_source`` and,
        when both are available, ``loglik_max_abs_diff`` between stored and recomputed
        log-likelihood.
    """
    post = tree["posterior"].to_dataset()
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    n_obs = len(obs.response)
    has_ll = "log_likelihood" in tree.children
    out: dict[str, Any] = {"n_obs": n_obs, "n_samples": int(n_samples)}
    params = flat_draws(post)
    if n_obs <= full_max:
        idx = np.arange(n_obs)
        computed = None
        if has_ll:
            ll_ds = tree["log_likelihood"].to_dataset()
            name = "response" if "response" in ll_ds else next(iter(ll_ds.data_vars))
            da = ll_ds[name].transpose("chain", "draw", ...)
            ll = np.asarray(da.values, dtype=np.float64).reshape(n_samples, -1)
            out["loglik_source"] = "stored log_likelihood group"
            check = np.unique(np.linspace(0, n_samples - 1, 5).astype(int))
            computed = log_lik({k: v[check] for k, v in params.items()}, obs)
            out["loglik_max_abs_diff"] = float(np.max(np.abs(computed - ll[check])))
        else:
            ll = np.concatenate([log_lik({k: v[lo : lo + 500] for k, v in params.items()}, obs)
                                 for lo in range(0, n_samples, 500)])
            out["loglik_source"] = "recomputed from the posterior draws"
        elpd_i, k_hat, lpd_i = _psis_terms(ll, r_eff)
        out.update(
            method="psis",
            elpd_loo=float(elpd_i.sum()),
            se=float(np.sqrt(n_obs * np.var(elpd_i, ddof=1))),
            p_loo=float((lpd_i - elpd_i).sum()),
            subsample_size=n_obs,
        )
    else:
        idx = np.sort(rng.choice(n_obs, size=min(subsample, n_obs), replace=False))
        point = {k: v.mean(axis=0, keepdims=True) for k, v in params.items()}
        lpd_approx_all = np.concatenate(
            [log_lik(point, obs, slice(lo, lo + 1_000_000))[0]
             for lo in range(0, n_obs, 1_000_000)]
        )
        ll = log_lik(params, obs, idx)
        out["loglik_source"] = "recomputed from the posterior draws (subsample)"
        elpd_i, k_hat, lpd_i = _psis_terms(ll, r_eff)
        elpd, sub_se, se = array_stats.diff_srs_estimator(
            elpd_i, lpd_approx_all[idx], lpd_approx_all, n_obs
        )
        p_loo, _, _ = array_stats.srs_estimator(lpd_i - elpd_i, n_obs)
        out.update(
            method="psis-subsample (plpd difference estimator)",
            elpd_loo=float(elpd),
            se=float(se),
            subsampling_se=float(sub_se),
            p_loo=float(p_loo),
            subsample_size=len(idx),
        )
    out["pareto_k"] = pareto_k_summary(k_hat, n_samples)
    out["r_eff"] = float(r_eff)
    return out


def _psis_terms(ll: np.ndarray, r_eff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PSIS-LOO terms of (S, n) log-likelihood: elpd_i, Pareto k, lpd_i, each (n,)."""
    n_samples, n = ll.shape
    lpd_i = logsumexp(ll, axis=0) - np.log(n_samples)
    elpd_i = lpd_i.copy()
    k_hat = np.zeros(n)
    # Where every draw gives the same log-likelihood the importance weights are uniform
    # (elpd_i = lpd_i, k = 0); arviz_stats' Pareto fit refuses such a flat tail.
    live = np.flatnonzero(np.ptp(ll, axis=0) > 1e-12)
    if live.size:
        sub = ll[:, live].T
        try:
            log_w, k_live = array_stats.psislw(sub, r_eff=r_eff, axis=-1)
        except ValueError:
            # A flat tail in some column (e.g. a broken chain stuck at one value): fit the
            # columns one by one and treat the flat ones as uniform.
            log_w = np.empty_like(sub)
            k_live = np.zeros(len(live))
            for col in range(len(live)):
                try:
                    log_w[col], k_live[col] = array_stats.psislw(sub[col], r_eff=r_eff)
                except ValueError:
                    log_w[col] = -np.log(n_samples)
                    k_live[col] = np.inf
        elpd_i[live] = logsumexp(log_w + sub, axis=1)
        k_hat[live] = np.asarray(k_live)
    return elpd_i, k_hat, lpd_i
