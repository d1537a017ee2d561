"""Everything the report shows, as numbers and small arrays: no figures, no HTML.

:func:`compute` loads a posterior, diagnoses it and returns a :class:`ReportData`;
``plots.report_figures`` draws from it and ``render.render_html`` lays it out.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from bayesirt.diagnostics import checks, heldout
from bayesirt.diagnostics.advice import next_steps
from bayesirt.diagnostics.convergence import ParamTable
from bayesirt.diagnostics.summary import (
    DiagnosticSummary,
    convergence,
    fmt,
    fmt_int,
    is_raw,
    shown_mask,
)
from bayesirt.posteriors import load, posterior_attrs

#: Group-level parameters: always traced, tabulated per benchmark, and searched for the block
#: whose funnel the divergent draws sit in.
HYPER_VARS = ("mu_difficulty", "sigma_difficulty", "mu_log_discrimination",
              "sigma_log_discrimination", "rho", "sigma_category", "ability_pop_loc",
              "ability_pop_scale", "guess", "embedding_coef_scale")
#: Provenance attributes listed in the (collapsed) provenance table.
PROVENANCE_KEYS = ("model_name", "bayesirt_version", "created_at", "seed", "device", "chains",
                   "warmup", "draws", "max_tree_depth", "jax_version", "numpyro_version",
                   "fingerprint", "data_source", "bayesirt_schema_version")


@dataclass
class Trace:
    """Draws of a few parameters for trace and rank plots.

    Attributes
    ----------
    names : list of str
    draws : list of ndarray, shape (chains, draws)
    notes : list of str
        Short per-parameter captions: R-hat, bulk/tail ESS.
    title : str
    """

    names: list[str]
    draws: list[np.ndarray]
    notes: list[str]
    title: str


@dataclass
class ReportData:
    """The report's content before it is drawn or laid out (see the module docstring).

    ``summary`` carries the verdict and headline numbers; the other attributes are plain
    lists, dicts and small arrays, one per report section (None when a section is skipped,
    with the reason in ``skipped``).
    """

    summary: DiagnosticSummary
    title: str
    posterior_file: str
    file_size_mb: float
    strict: bool
    provenance: list[tuple[str, Any]]
    config: dict[str, Any]
    run: dict[str, Any]
    per_variable: list[dict[str, Any]]
    omitted: dict[str, Any]
    divergence_suspects: list[dict[str, Any]]
    hyper_trace: Trace | None
    worst_trace: Trace | None
    bench_names: list[str]
    model_names: list[str]
    forest: dict[str, Any] | None = None
    item_params: dict[str, Any] | None = None
    bench_priors: dict[str, Any] = field(default_factory=dict)
    ppc: checks.PPCResult | None = None
    loo: dict[str, Any] | None = None
    heldout: dict[str, Any] | None = None
    skipped: dict[str, str] = field(default_factory=dict)


def _draws(post: xr.Dataset, table: ParamTable, i: int) -> np.ndarray:
    vals = np.asarray(post[str(table.var[i])].transpose("chain", "draw", ...).values)
    return vals.reshape(vals.shape[0], vals.shape[1], -1)[:, :, int(table.flat_index[i])]


def _note(table: ParamTable, i: int) -> str:
    return (f"R-hat {fmt(float(table.rhat[i]))}, ESS {fmt_int(table.ess_bulk[i])}/"
            f"{fmt_int(table.ess_tail[i])}")


def _trace(post: xr.Dataset, table: ParamTable, idx: list[int], title: str) -> Trace | None:
    if not idx:
        return None
    return Trace([table.name(i) for i in idx], [_draws(post, table, i) for i in idx],
                 [_note(table, i) for i in idx], title)


def _per_variable(table: ParamTable) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Worst values per reported variable, and what the tables leave out."""
    rows, constant_vars, raw = [], {}, []
    for var in dict.fromkeys(str(v) for v in table.var):
        sel = table.var == var
        live = sel & ~table.constant
        n_const = int((sel & table.constant).sum())
        if n_const:
            constant_vars[var] = n_const
        if not live.any():
            continue
        ess = np.fmin(table.ess_bulk, table.ess_tail)
        i_r = int(np.flatnonzero(live)[np.argmax(np.nan_to_num(table.rhat[live], nan=np.inf))])
        i_e = int(np.flatnonzero(live)[np.argmin(np.nan_to_num(ess[live], nan=-1.0))])
        with np.errstate(invalid="ignore", divide="ignore"):
            mcse_sd = float(np.nanmax(table.mcse[live] / table.sd[live]))
        row = {"var": var, "n": int(live.sum()), "n_constant": n_const,
               "rhat_max": float(table.rhat[i_r]), "rhat_where": table.name(i_r),
               "ess_bulk_min": float(np.nanmin(table.ess_bulk[live])),
               "ess_tail_min": float(np.nanmin(table.ess_tail[live])),
               "ess_where": table.name(i_e), "mcse_sd_max": mcse_sd}
        (raw if is_raw(var) else rows).append(row)
    omitted = {"n_constant": int(table.constant.sum()), "constant_vars": constant_vars,
               "raw": raw, "n_raw": int(sum(r["n"] for r in raw))}
    return rows, omitted


def divergence_suspects(post: xr.Dataset, table: ParamTable, diverging: np.ndarray,
                        n: int = 3) -> list[dict[str, Any]]:
    """Group-level parameters where divergent draws sit furthest from the other draws.

    Parameters
    ----------
    post : xarray.Dataset
        Labelled posterior group.
    table : ParamTable
        Its diagnostics (for names and constants).
    diverging : ndarray of bool, shape (chains, draws)
    n : int, default 3
        Parameters returned.

    Returns
    -------
    list of dict
        ``name`` and ``shift``: (mean over divergent draws - mean over the others) / sd,
        on the log scale for positive parameters (a funnel's neck is a small scale), largest
        ``|shift|`` first; empty without divergences.
    """
    div = np.asarray(diverging, dtype=bool).ravel()
    if not div.any() or div.all():
        return []
    out = []
    for var in HYPER_VARS:
        if var not in post:
            continue
        x = np.asarray(post[var].transpose("chain", "draw", ...).values, dtype=np.float64)
        x = x.reshape(div.size, -1)
        rows = np.flatnonzero((table.var == var) & ~table.constant)
        for i in rows:
            col = x[:, int(table.flat_index[i])]
            log = bool((col > 0).all())
            col = np.log(col) if log else col
            sd = col.std()
            if sd > 0:
                shift = (col[div].mean() - col[~div].mean()) / sd
                out.append({"name": table.name(int(i)), "shift": float(shift), "log": log})
    out.sort(key=lambda r: -abs(r["shift"]))
    return out[:n]


def _forest(post: xr.Dataset, obs: checks.Observations | None, bench: list[str],
            models: list[str], max_rows: int) -> dict[str, Any]:
    ability = np.asarray(post["ability"].transpose("chain", "draw", ...).values)
    ability = ability.reshape((-1, *ability.shape[2:]))
    q = np.quantile(ability, [0.05, 0.5, 0.95], axis=0)  # (3, model, benchmark)
    observed = np.ones(q.shape[1:], dtype=bool)
    if obs is not None:
        observed[:] = False
        observed[obs.model_idx, obs.obs_benchmark] = True
    if "theta" in post and post["theta"].dims[2:] == ("model",):
        key = np.median(np.asarray(post["theta"].values).reshape(-1, q.shape[1]), axis=0)
        order_by = "general ability theta (posterior median)"
    else:
        key = np.nanmean(np.where(observed, q[1], np.nan), axis=1)
        order_by = "mean ability over the benchmarks the model was observed on"
    order = np.argsort(-np.nan_to_num(key, nan=-np.inf), kind="stable")
    note, gap = "", None
    if len(order) > max_rows:
        half = max_rows // 2
        note = (f"{len(order) - 2 * half} models in the middle of the ranking are not drawn "
                f"(top {half} and bottom {half} shown)")
        order, gap = np.concatenate([order[:half], order[-half:]]), half
    return {"bench_names": bench, "model_names": [models[m] for m in order],
            "q": q[:, order, :], "observed": observed[order], "order_by": order_by,
            "note": note, "gap": gap, "n_models": len(models)}


def _bench_priors(post: xr.Dataset, table: ParamTable, bench: list[str]) -> dict[str, Any]:
    """Median and 90% interval of per-benchmark hyperparameters (constants left out)."""
    rows, constant = [], []
    for var in HYPER_VARS:
        if var not in post or len(post[var].dims) != 3:
            continue
        dim = post[var].dims[2]
        labels = [str(v) for v in post.coords[dim].values] if dim in post.coords else []
        if not labels or not set(labels) <= set(bench):
            continue
        sel = table.var == var
        if table.constant[sel].all():
            constant.append(var)
            continue
        vals = np.asarray(post[var].transpose("chain", "draw", ...).values)
        qq = np.quantile(vals.reshape(-1, vals.shape[-1]), [0.05, 0.5, 0.95], axis=0)
        cells: list[tuple[float, float, float] | None] = [None] * len(bench)
        for k, label in enumerate(labels):
            cells[bench.index(label)] = (float(qq[1, k]), float(qq[0, k]), float(qq[2, k]))
        rows.append({"var": var, "cells": cells})
    return {"rows": rows, "constant": constant}


def _heldout(tree: xr.DataTree, posterior_path: str | os.PathLike, test_dir: Any,
             s: DiagnosticSummary, skipped: dict[str, str]) -> dict[str, Any] | None:
    paths = heldout.locate(test_dir)
    pred, reason = heldout.heldout_predictions(tree, posterior_path, paths)
    if pred is None:
        s.warnings.append(f"held-out metrics skipped: {reason}")
        skipped["heldout"] = reason
        return None
    y, p, joined = heldout.join_truth(pred, paths["ground_truth"])
    s.heldout = heldout.metrics(y, p)
    by_bench = []
    for name, grp in joined.groupby("benchmark"):
        yy = grp["label" if "label" in grp else "response"].to_numpy()
        m = heldout.metrics(yy, grp["predicted_probability"].to_numpy())
        by_bench.append({"benchmark": str(name), **m})
    return {"test_dir": str(paths["test_dir"]), "metrics": s.heldout, "by_benchmark": by_bench,
            "reliability": heldout.reliability(y, p)}


def compute(
    posterior_path: str | os.PathLike,
    *,
    test_dir: str | os.PathLike | None = None,
    strict: bool = False,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    bfmi_min: float = 0.3,
    allow_divergences: int = 0,
    max_plot_params: int = 8,
    ppc_draws: int = 200,
    loo_full_max: int = 50_000,
    loo_subsample: int = 2_000,
    forest_max_rows: int = 100,
    seed: int = 0,
    tick: Callable[[str], None] | None = None,
) -> ReportData:
    """Diagnose a saved posterior; see :func:`bayesirt.diagnostics.run_diagnose` for arguments.

    Parameters
    ----------
    forest_max_rows : int, default 100
        Models drawn in the ability forest plot; above, the top and bottom halves.
    tick : callable, optional
        Called with a step name after each step (progress and timings).

    Returns
    -------
    ReportData

    Raises
    ------
    FileNotFoundError
        If the posterior (or the test data) does not exist.
    ValueError
        If the file is not a readable bayesirt posterior.
    """
    tick = tick or (lambda name: None)
    rng = np.random.default_rng(seed)
    tree = load(posterior_path)
    try:
        attrs = posterior_attrs(tree)
        tick("load")
        s, table, stats, post = convergence(tree, rhat_max=rhat_max, ess_min=ess_min,
                                            bfmi_min=bfmi_min,
                                            allow_divergences=allow_divergences, n_worst=10)
        per_var, omitted = _per_variable(table)
        shown = shown_mask(table)
        hyper_idx = [int(i) for var in HYPER_VARS
                     for i in np.flatnonzero((table.var == var) & shown)]
        worst_idx = [w["index"] for w in s.worst[: (max_plot_params + 1) // 2]]
        worst_idx += [w["index"] for w in s.worst_ess if w["index"] not in worst_idx]
        worst_idx = worst_idx[:max_plot_params]
        diverging = np.asarray(tree["sample_stats"]["diverging"].values) \
            if "diverging" in tree["sample_stats"] else np.zeros((1, 1), dtype=bool)
        config = attrs.get("config", {}) or {}
        data = ReportData(
            summary=s,
            title=f"bayesirt diagnostics: {attrs.get('model_name', '?')} "
                  f"({Path(posterior_path).name})",
            posterior_file=str(Path(posterior_path).resolve()),
            # MB = 1e6 bytes, the unit `bayesirt fit` prints.
            file_size_mb=os.path.getsize(posterior_path) / 1e6,
            strict=strict,
            provenance=[(k, attrs[k]) for k in PROVENANCE_KEYS if k in attrs],
            config=config,
            run={k: attrs.get(k, config.get(k)) for k in ("model_name", "chains", "warmup",
                                                           "draws", "seed", "created_at")}
            | {"target_accept": config.get("target_accept"),
               "parameterisation": config.get("parameterisation")},
            per_variable=per_var,
            omitted=omitted,
            divergence_suspects=divergence_suspects(post, table, diverging),
            hyper_trace=_trace(post, table, hyper_idx, "group-level parameters"),
            worst_trace=_trace(post, table, worst_idx,
                               f"{len(worst_idx)} worst parameters (highest R-hat, then "
                               "lowest ESS)"),
            bench_names=([str(b) for b in post.coords["benchmark"].values]
                         if "benchmark" in post.coords
                         else [str(i) for i in range(post["ability"].shape[-1])]),
            model_names=([str(m) for m in post.coords["model"].values]
                         if "model" in post.coords
                         else [str(i) for i in range(post["ability"].shape[-2])]),
        )
        tick("convergence")

        obs = None
        try:
            obs = checks.observations(tree)
        except ValueError as exc:
            s.warnings.append(f"posterior predictive checks and LOO skipped: {exc}")
            data.skipped["ppc"] = data.skipped["loo"] = str(exc)
        data.forest = _forest(post, obs, data.bench_names, data.model_names, forest_max_rows)
        if obs is not None and "difficulty" in post:
            diff = np.asarray(post["difficulty"].mean(("chain", "draw")).values)
            ld = (np.asarray(post["log_discrimination"].mean(("chain", "draw")).values)
                  if "log_discrimination" in post else None)
            if ld is not None and np.allclose(ld, 0):
                ld = None  # Rasch: discrimination is fixed at 1
            data.item_params = {"item_benchmark": obs.item_benchmark[: len(diff)],
                                "difficulty": diff, "log_discrimination": ld}
        data.bench_priors = _bench_priors(post, table, data.bench_names)
        tick("parameters")

        if obs is not None:
            data.ppc = checks.posterior_predictive(post, obs, rng, n_draws=ppc_draws)
            s.loo["ppc_coverage_benchmark"] = data.ppc.coverage("benchmark")
            s.loo["ppc_coverage_model"] = data.ppc.coverage("model")
        tick("ppc")

        if obs is not None:
            live = ~table.constant
            with np.errstate(invalid="ignore"):
                r_eff = float(np.nanmean(np.fmin(table.ess_bulk[live] / max(1, s.n_samples),
                                                 1.0)))
            loo = checks.compute_loo(tree, obs, rng,
                                     r_eff=r_eff if math.isfinite(r_eff) else 1.0,
                                     full_max=loo_full_max, subsample=loo_subsample)
            s.loo = {**loo, **s.loo}
            s.elpd_loo, s.elpd_loo_se, s.p_loo = loo["elpd_loo"], loo["se"], loo["p_loo"]
            pk = loo["pareto_k"]
            if pk["bad"] + pk["very_bad"]:
                s.warnings.append(
                    f"Pareto k > {pk['threshold']:.2f} for {pk['bad'] + pk['very_bad']} of "
                    f"{pk['n']} observations checked: PSIS-LOO is unreliable there")
            diff = loo.get("loglik_max_abs_diff")
            if diff is not None and diff > 1e-3:
                s.warnings.append(
                    f"stored log-likelihood differs from the contract likelihood by up to "
                    f"{diff:.3g}: the model's likelihood is not the one this report assumes")
            data.loo = loo
        tick("loo")

        if test_dir is not None:
            data.heldout = _heldout(tree, posterior_path, test_dir, s, data.skipped)
        tick("heldout")
        s.next_steps = next_steps(s, data.run, data.divergence_suspects, data.per_variable)
    finally:
        tree.close()
    return data

