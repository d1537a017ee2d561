"""Convergence diagnostics over every posterior parameter, vectorised across parameters.

arviz_stats computes rank-normalised R-hat, bulk/tail ESS and MCSE one parameter at a time
(a Python loop inside ``make_ufunc``): about 80 s for the ~29,000 parameters of a
real-multibench fit. The functions here follow arviz_stats' array code line by line
(``arviz_stats.base.diagnostics``: Vehtari et al. 2021, split chains, Blom rank
normalisation, Geyer's initial monotone sequence) but operate on a block of parameters at
once; ``tests/test_diagnostics.py`` checks they agree with arviz_stats to 1e-8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from scipy import special, stats
from scipy.fft import irfft, next_fast_len, rfft

#: Tail-ESS quantiles (Vehtari et al. 2021 use the 5% and 95% quantiles).
TAIL_PROBS = (0.05, 0.95)
# Parameters per block: keeps the FFT work arrays near 100 MB for 4 x 1,000 draws.
_BLOCK = 1024


def _split_chains(x: np.ndarray) -> np.ndarray:
    """(P, C, N) -> (P, 2C, N // 2): first and last halves of each chain as separate chains."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half :]], axis=1)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalise each parameter over all its draws (Blom offset 3/8)."""
    n_par = x.shape[0]
    flat = x.reshape(n_par, -1)
    size = flat.shape[1]
    order = np.argsort(flat, axis=1)
    # Without ties the normal scores depend only on the rank, so one vector of scores is
    # scattered into every row; rows with ties get scipy's average ranks.
    scores = special.ndtri((np.arange(1, size + 1) - 3 / 8) / (size - 2 * 3 / 8 + 1))
    z = np.empty((n_par, size))
    np.put_along_axis(z, order, np.broadcast_to(scores, (n_par, size)), axis=1)
    sorted_vals = np.sort(flat, axis=1)
    tied = (sorted_vals[:, 1:] == sorted_vals[:, :-1]).any(axis=1)
    if tied.any():
        ranks = stats.rankdata(flat[tied], method="average", axis=1)
        z[tied] = special.ndtri((ranks - 3 / 8) / (size - 2 * 3 / 8 + 1))
    return z.reshape(x.shape)


def _rhat_basic(x: np.ndarray) -> np.ndarray:
    """Gelman-Rubin R-hat of (P, C, N) chains (no splitting)."""
    n = x.shape[2]
    chain_mean = x.mean(axis=2)
    chain_var = x.var(axis=2, ddof=1)
    between = n * chain_mean.var(axis=1, ddof=1)
    within = chain_var.mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n - 1) / n)


def rhat_rank(x: np.ndarray) -> np.ndarray:
    """Rank-normalised split R-hat, max of bulk and folded (tail) versions.

    Parameters
    ----------
    x : ndarray, shape (P, chains, draws)
        Draws of P parameters.

    Returns
    -------
    ndarray, shape (P,)
        R-hat; NaN with fewer than 2 chains or 4 draws.
    """
    if x.shape[1] < 2 or x.shape[2] < 4:
        return np.full(x.shape[0], np.nan)
    split = _split_chains(x)
    bulk = _rhat_basic(_z_scale(split))
    med = np.median(split.reshape(split.shape[0], -1), axis=1)
    tail = _rhat_basic(_z_scale(np.abs(split - med[:, None, None])))
    return np.maximum(bulk, tail)


def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance of each chain at every lag, via FFT, (P, C, N) -> (P, C, N)."""
    n = x.shape[2]
    m = next_fast_len(2 * n)
    centred = x - x.mean(axis=2, keepdims=True)
    spec = rfft(centred, n=m, axis=2)
    spec *= np.conjugate(spec)
    return irfft(spec, n=m, axis=2)[:, :, :n] / n


def _rho(x: np.ndarray, n_lags: int | None) -> np.ndarray:
    """Combined-chain autocorrelation estimates rho_t (P, n_lags) as in arviz_stats."""
    n_chain, n = x.shape[1], x.shape[2]
    if n_lags is None or n_lags >= n:
        acov = _autocov(x)
    else:
        # A few lags by direct products are much cheaper than a full FFT, and for chains
        # that mix well Geyer's sequence stops within them.
        centred = x - x.mean(axis=2, keepdims=True)
        acov = np.empty(x.shape[:2] + (n_lags,))
        for lag in range(n_lags):
            acov[:, :, lag] = np.einsum("pcn,pcn->pc", centred[:, :, : n - lag],
                                        centred[:, :, lag:]) / n
    mean_var = acov[:, :, 0].mean(axis=1) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if n_chain > 1:
        var_plus = var_plus + x.mean(axis=2).var(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]
    rho[:, 0] = 1.0
    return rho


def _geyer_tau(rho: np.ndarray, n: int, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Integrated autocorrelation time from (possibly truncated) rho; also 'resolved' mask."""
    # Pair sums P_k = rho[2k] + rho[2k+1]; arviz's while-loop visits k = 1..k_lim and stops
    # at the first non-positive pair (kept only when exactly 0).
    k_lim = (n - 3) // 2
    k_avail = min(k_lim, (rho.shape[1] - 2) // 2)
    pairs = rho[:, 0 : 2 * k_avail + 2 : 2] + rho[:, 1 : 2 * k_avail + 2 : 2]
    nonpos = pairs[:, 1:] <= 0
    found = nonpos.any(axis=1)
    first_bad = np.where(found, nonpos.argmax(axis=1) + 1, k_avail)
    k_max = np.where(pairs[:, 0] > 0, first_bad, 0)
    resolved = found | (pairs[:, 0] <= 0) | (k_avail == k_lim)
    rows = np.arange(rho.shape[0])
    # Monotone step: each pair sum is capped by the previous one (a running minimum).
    mono = np.minimum.accumulate(pairs, axis=1)
    keep = np.arange(pairs.shape[1])[None, :] < k_max[:, None]
    head = np.where(keep, mono, 0.0).sum(axis=1)
    last_even = rho[rows, 2 * k_max]
    last_pair = pairs[rows, k_max]
    last = np.where((last_pair >= 0) | (last_even > 0), last_even, 0.0)
    tau = np.maximum(-1.0 + 2.0 * head + last, 1.0 / np.log10(total))
    tau[np.isnan(rho).any(axis=1)] = np.nan
    return tau, resolved


def ess_basic(x: np.ndarray, n_lags: int = 32) -> np.ndarray:
    """ESS of (P, C, N) chains with Geyer's initial monotone sequence (no splitting).

    Parameters
    ----------
    x : ndarray, shape (P, chains, draws)
    n_lags : int, default 32
        Lags computed directly first; parameters whose sequence has not ended within them
        are redone with all lags (FFT), so the result does not depend on this.

    Returns
    -------
    ndarray, shape (P,)
        Effective sample size; constant parameters get chains * draws, as in arviz_stats.
    """
    x = np.asarray(x, dtype=np.float64)
    n_par, n_chain, n = x.shape
    total = n_chain * n
    out = np.full(n_par, np.nan)
    flat = x.reshape(n_par, -1)
    const = (flat.max(axis=1) - flat.min(axis=1)) < np.finfo(float).resolution
    out[const] = total
    live = np.flatnonzero(~const)
    if live.size == 0 or n < 4:
        return out
    tau, resolved = _geyer_tau(_rho(x[live], n_lags), n, total)
    if not resolved.all():
        redo = np.flatnonzero(~resolved)
        tau[redo], _ = _geyer_tau(_rho(x[live[redo]], None), n, total)
    out[live] = total / tau
    return out


def ess_bulk(x: np.ndarray) -> np.ndarray:
    """Bulk ESS: ESS of the rank-normalised split chains. ``x`` is (P, chains, draws)."""
    if x.shape[2] < 4:
        return np.full(x.shape[0], np.nan)
    return ess_basic(_z_scale(_split_chains(x)))


def ess_tail(x: np.ndarray, probs: tuple[float, float] = TAIL_PROBS) -> np.ndarray:
    """Tail ESS: min ESS of the indicators x <= q(probs[0]) and x <= q(probs[1])."""
    if x.shape[2] < 4:
        return np.full(x.shape[0], np.nan)
    flat = x.reshape(x.shape[0], -1)
    result = None
    for prob in probs:
        q = np.quantile(flat, prob, axis=1)
        ind = (x <= q[:, None, None]).astype(np.float64)
        ess = ess_basic(_split_chains(ind))
        result = ess if result is None else np.minimum(result, ess)
    return result


def mcse_mean(x: np.ndarray) -> np.ndarray:
    """MCSE of the posterior mean: sd / sqrt(ESS of the split chains)."""
    if x.shape[2] < 4:
        return np.full(x.shape[0], np.nan)
    ess = ess_basic(_split_chains(x))
    sd = x.reshape(x.shape[0], -1).std(axis=1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sd / np.sqrt(ess)


def diagnose_block(x: np.ndarray) -> dict[str, np.ndarray]:
    """R-hat, bulk/tail ESS and MCSE of a block of parameters, sharing the rank work.

    Parameters
    ----------
    x : ndarray, shape (P, chains, draws)

    Returns
    -------
    dict of str to ndarray (P,)
        ``rhat``, ``ess_bulk``, ``ess_tail``, ``mcse``: the same values as
        :func:`rhat_rank`, :func:`ess_bulk`, :func:`ess_tail`, :func:`mcse_mean`.
    """
    if x.shape[2] < 4:
        nan = np.full(x.shape[0], np.nan)
        return {"rhat": nan, "ess_bulk": nan.copy(), "ess_tail": nan.copy(), "mcse": nan.copy()}
    split = _split_chains(x)
    z = _z_scale(split)
    if x.shape[1] >= 2:
        med = np.median(split.reshape(split.shape[0], -1), axis=1)
        tail = _rhat_basic(_z_scale(np.abs(split - med[:, None, None])))
        rhat = np.maximum(_rhat_basic(z), tail)
    else:
        rhat = np.full(x.shape[0], np.nan)
    return {"rhat": rhat, "ess_bulk": ess_basic(z), "ess_tail": ess_tail(x),
            "mcse": mcse_mean(x)}


@dataclass
class ParamTable:
    """Per-parameter diagnostics of all posterior variables, flattened.

    Attributes
    ----------
    var : ndarray of str, shape (P,)
        Variable name of each flat parameter.
    flat_index : ndarray of int, shape (P,)
        Position within the variable's trailing shape (C order).
    mean, sd, mcse, rhat, ess_bulk, ess_tail : ndarray of float, shape (P,)
        Diagnostics; NaN for constant parameters (e.g. Rasch's log_discrimination = 0).
    constant : ndarray of bool, shape (P,)
        True where every draw is identical.
    labels : dict
        var -> (dims, list of coordinate labels per dim), to name parameters on demand.
    """

    var: np.ndarray
    flat_index: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    mcse: np.ndarray
    rhat: np.ndarray
    ess_bulk: np.ndarray
    ess_tail: np.ndarray
    constant: np.ndarray
    labels: dict[str, tuple[tuple[str, ...], list[list[str]], tuple[int, ...]]]

    def name(self, i: int) -> str:
        """Readable name of flat parameter ``i``, e.g. ``ability[meta/llama-3-8b, gsm8k]``."""
        var = str(self.var[i])
        dims, labels, shape = self.labels[var]
        if not shape:
            return var
        pos = np.unravel_index(int(self.flat_index[i]), shape)
        parts = [labels[d][p] for d, p in enumerate(pos)]
        return f"{var}[{', '.join(parts)}]"

    def __len__(self) -> int:
        return len(self.var)


def _labels(da: xr.DataArray) -> tuple[tuple[str, ...], list[list[str]], tuple[int, ...]]:
    dims = tuple(d for d in da.dims if d not in ("chain", "draw"))
    labels = []
    for dim in dims:
        if dim in da.coords:
            labels.append([str(v) for v in da.coords[dim].values])
        else:
            labels.append([str(i) for i in range(da.sizes[dim])])
    return dims, labels, tuple(da.sizes[d] for d in dims)


def param_table(posterior: xr.Dataset, var_names: list[str] | None = None) -> ParamTable:
    """Diagnose every scalar parameter of the posterior, in blocks of parameters.

    Parameters
    ----------
    posterior : xarray.Dataset
        The ``posterior`` group: variables ``(chain, draw, ...)``.
    var_names : list of str, optional
        Restrict to these variables (default: all numeric ones).

    Returns
    -------
    ParamTable
        One row per scalar parameter.
    """
    names = var_names or [n for n, v in posterior.data_vars.items() if v.dtype.kind in "biuf"]
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    var_col, idx_col, labels = [], [], {}
    blocks: list[np.ndarray] = []
    for name in names:
        da = posterior[name].transpose("chain", "draw", ...)
        labels[name] = _labels(da)
        size = int(np.prod(da.shape[2:], dtype=np.int64))
        var_col.append(np.full(size, name, dtype=object))
        idx_col.append(np.arange(size))
        # (chain, draw, P) -> (P, chain, draw): parameters first so blocks are contiguous.
        blocks.append(np.moveaxis(np.asarray(da.values).reshape(n_chain, n_draw, size), 2, 0))
    n_par = sum(b.shape[0] for b in blocks)
    cols = {k: np.full(n_par, np.nan) for k in ("mean", "sd", "mcse", "rhat", "ess_bulk",
                                                 "ess_tail")}
    constant = np.zeros(n_par, dtype=bool)
    start = 0
    for arr in blocks:
        for lo in range(0, arr.shape[0], _BLOCK):
            x = np.asarray(arr[lo : lo + _BLOCK], dtype=np.float64)
            sl = slice(start + lo, start + lo + x.shape[0])
            flat = x.reshape(x.shape[0], -1)
            const = flat.max(axis=1) == flat.min(axis=1)
            constant[sl] = const
            cols["mean"][sl] = flat.mean(axis=1)
            cols["sd"][sl] = flat.std(axis=1, ddof=1) if flat.shape[1] > 1 else np.nan
            live = ~const
            if live.any():
                for key, vals in diagnose_block(x[live]).items():
                    col = np.full(x.shape[0], np.nan)
                    col[live] = vals
                    cols[key][sl] = col
        start += arr.shape[0]
    return ParamTable(
        var=np.concatenate(var_col) if var_col else np.zeros(0, dtype=object),
        flat_index=np.concatenate(idx_col) if idx_col else np.zeros(0, dtype=np.int64),
        constant=constant,
        labels=labels,
        **cols,
    )


def sampler_stats(sample_stats: xr.Dataset, max_tree_depth: int | None) -> dict[str, Any]:
    """Divergences, tree-depth saturation and E-BFMI per chain.

    Parameters
    ----------
    sample_stats : xarray.Dataset
        The ``sample_stats`` group (``diverging``, ``tree_depth`` or ``n_steps``,
        ``energy``), each ``(chain, draw)``.
    max_tree_depth : int or None
        The NUTS depth limit; saturation is counted when known.

    Returns
    -------
    dict
        ``divergences`` (int), ``divergences_per_chain`` (list), ``n_samples`` (int),
        ``treedepth_saturated`` (int or None), ``bfmi`` (list per chain or None),
        ``bfmi_min`` (float or NaN).
    """
    n_chain, n_draw = sample_stats.sizes["chain"], sample_stats.sizes["draw"]
    out: dict[str, Any] = {"n_samples": int(n_chain * n_draw), "n_chains": int(n_chain)}
    if "diverging" in sample_stats:
        div = np.asarray(sample_stats["diverging"].values).astype(bool)
        out["divergences"] = int(div.sum())
        out["divergences_per_chain"] = [int(v) for v in div.sum(axis=1)]
    else:
        out["divergences"], out["divergences_per_chain"] = 0, None
    saturated = None
    if max_tree_depth is not None and max_tree_depth > 0:
        if "tree_depth" in sample_stats:
            depth = np.asarray(sample_stats["tree_depth"].values)
            saturated = int((depth >= max_tree_depth).sum())
        elif "n_steps" in sample_stats:
            # A tree of depth d takes at most 2**d - 1 leapfrog steps.
            steps = np.asarray(sample_stats["n_steps"].values)
            saturated = int((steps >= 2**max_tree_depth - 1).sum())
    out["treedepth_saturated"] = saturated
    out["max_tree_depth"] = max_tree_depth
    if "energy" in sample_stats and n_draw > 2:
        energy = np.asarray(sample_stats["energy"].values, dtype=np.float64)
        num = np.square(np.diff(energy, axis=1)).mean(axis=1)
        den = energy.var(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            bfmi = num / den
        out["bfmi"] = [float(v) for v in bfmi]
        out["bfmi_min"] = float(np.nanmin(bfmi)) if np.isfinite(bfmi).any() else float("nan")
    else:
        out["bfmi"], out["bfmi_min"] = None, float("nan")
    return out
