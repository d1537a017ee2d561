"""Headline convergence numbers and the verdict: the numpy part of the report, no plots or HTML.

The verdict is judged over every non-constant posterior scalar, the sampler's own
coordinates (non-centred ``*_raw``/``*_z`` sites) included, so it agrees with what
``bayesirt fit`` prints. The tables a reader sees leave those coordinates and constant
parameters out (:func:`shown_mask`), and name parameters by their ids (:func:`labelled`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from bayesirt.diagnostics.convergence import ParamTable, param_table, sampler_stats

#: Suffixes and names of sampler coordinates: reparameterisations of reported parameters
#: (``difficulty_raw`` is ``difficulty`` or its standardised form), not quantities of interest.
RAW_SUFFIXES = ("_raw", "_z", "_free")
RAW_NAMES = frozenset({"ability_cell", "ability_std"})


def is_raw(var: str) -> bool:
    """Whether a posterior variable is a sampler coordinate rather than a model quantity."""
    return var in RAW_NAMES or var.endswith(RAW_SUFFIXES)


@dataclass
class DiagnosticSummary:
    """Headline numbers of a posterior's diagnostics, and the verdict.

    Attributes
    ----------
    rhat_max, ess_bulk_min, ess_tail_min, mcse_over_sd_max : float
        Worst values over all non-constant posterior parameters.
    rhat_max_where, ess_bulk_min_where, ess_tail_min_where : str
        The parameter holding each worst value (``""`` when none).
    n_params, n_constant_params, n_raw_params : int
        Scalar parameters diagnosed, those skipped because every draw is equal, and the
        non-constant sampler coordinates (counted in the verdict, left out of tables).
    divergences, n_samples, n_chains : int
        Divergent transitions, total post-warmup draws and chains.
    treedepth_saturated : int or None
        Draws that hit the tree-depth limit ``max_tree_depth`` (None when unknown).
    bfmi_min : float
        Lowest E-BFMI over chains; ``bfmi`` lists each chain's.
    elpd_loo, elpd_loo_se, p_loo : float
        PSIS-LOO (NaN when it could not be computed); ``loo`` holds the details.
    heldout : dict
        ``log_loss``, ``auc``, ``brier``, ``ece``, ``n`` when computed, else empty.
    passed : bool
        No failure against the thresholds.
    failures : list of str
        Plain sentences, one per failed check.
    warnings : list of str
        Problems that do not fail ``--strict`` (tree depth, Pareto k, skipped sections).
    next_steps : list of str
        What to do about the failures and warnings, most important first.
    worst, worst_ess : list of dict
        Reported parameters (no sampler coordinates, no constants) with the highest R-hat,
        and with the lowest min(bulk, tail) ESS.
    """

    rhat_max: float = float("nan")
    rhat_max_where: str = ""
    ess_bulk_min: float = float("nan")
    ess_bulk_min_where: str = ""
    ess_tail_min: float = float("nan")
    ess_tail_min_where: str = ""
    mcse_over_sd_max: float = float("nan")
    n_params: int = 0
    n_constant_params: int = 0
    n_raw_params: int = 0
    divergences: int = 0
    divergences_per_chain: list[int] | None = None
    n_samples: int = 0
    n_chains: int = 0
    treedepth_saturated: int | None = None
    max_tree_depth: int | None = None
    bfmi_min: float = float("nan")
    bfmi: list[float] | None = None
    elpd_loo: float = float("nan")
    elpd_loo_se: float = float("nan")
    p_loo: float = float("nan")
    loo: dict[str, Any] = field(default_factory=dict)
    heldout: dict[str, Any] = field(default_factory=dict)
    passed: bool = True
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    worst: list[dict[str, Any]] = field(default_factory=list)
    worst_ess: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and inf become None)."""
        return jsonable(asdict(self))


def jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays into Python values and non-finite floats into None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fmt(x: Any, digits: int = 3) -> str:
    """Format a number for text: ``digits`` decimals, ``n/a`` for None/NaN/inf."""
    if x is None:
        return "n/a"
    if isinstance(x, float | np.floating):
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.{digits}f}" if abs(x) < 1e5 else f"{x:,.{min(digits, 1)}f}"
    return str(x)


def fmt_int(x: Any) -> str:
    """Format a count such as an ESS as a whole number (``n/a`` when not finite)."""
    if x is None or (isinstance(x, float | np.floating) and not math.isfinite(x)):
        return "n/a"
    return str(int(round(float(x))))


# ----------------------------------------------------------------------------- naming


def dim_labels(tree: xr.DataTree) -> dict[str, list[str]]:
    """Ids for the model-internal dims the posterior file stores without coordinates.

    ``multi_benchmark`` (benchmarks with two or more trained categories) and
    ``free_category`` (their categories) are rebuilt from ``constant_data`` the way
    ``bayesirt.models.inputs.build_inputs`` defines them, so ``sigma_category[mmlu_pro]``
    reads as a benchmark instead of ``sigma_category[1]``.

    Parameters
    ----------
    tree : xarray.DataTree
        A bayesirt posterior.

    Returns
    -------
    dict of str to list of str
        Dim name -> ids; empty when the file lacks the category maps or ids.
    """
    if "constant_data" not in tree.children:
        return {}
    const = tree["constant_data"].to_dataset()
    post = tree["posterior"]
    if not {"item_category", "category_benchmark"} <= set(const.data_vars):
        return {}
    if "benchmark" not in post.coords or "category" not in const.coords:
        return {}
    benches = [str(b) for b in post.coords["benchmark"].values]
    cats = [str(c) for c in const.coords["category"].values]
    category_benchmark = np.asarray(const["category_benchmark"].values, dtype=np.int64)
    used = np.unique(np.asarray(const["item_category"].values, dtype=np.int64))
    if used.size and (used.max() >= len(cats) or category_benchmark.max() >= len(benches)):
        return {}
    per_bench = np.bincount(category_benchmark[used], minlength=len(benches))
    multi = np.flatnonzero(per_bench >= 2)
    free = used[np.isin(category_benchmark[used], multi)]
    return {"multi_benchmark": [benches[k] for k in multi],
            "free_category": [cats[c] for c in free]}


def labelled(tree: xr.DataTree) -> xr.Dataset:
    """Return the posterior group with ids on dims that lack coordinates (when sizes fit)."""
    post = tree["posterior"].to_dataset()
    for dim, ids in dim_labels(tree).items():
        if dim in post.dims and dim not in post.coords and post.sizes[dim] == len(ids):
            post = post.assign_coords({dim: ids})
    return post


def shown_mask(table: ParamTable) -> np.ndarray:
    """Parameters the tables show: not constant and not a sampler coordinate, shape (P,)."""
    raw = np.array([is_raw(str(v)) for v in table.var], dtype=bool)
    return ~table.constant & ~raw


def worst_rows(table: ParamTable, mask: np.ndarray, by: str, n: int) -> list[int]:
    """Return the indices of the ``n`` worst parameters within ``mask``, worst first.

    Parameters
    ----------
    table : ParamTable
    mask : ndarray of bool, shape (P,)
        Candidates.
    by : {"rhat", "ess"}
        Highest R-hat (NaN counts as worst), or lowest min(bulk ESS, tail ESS).
    n : int
        Rows wanted.
    """
    cand = np.flatnonzero(mask)
    if by == "rhat":
        key = -np.nan_to_num(table.rhat[cand], nan=np.inf)
    elif by == "ess":
        key = np.nan_to_num(np.fmin(table.ess_bulk[cand], table.ess_tail[cand]), nan=-1.0)
    else:
        raise ValueError(f"by must be 'rhat' or 'ess', got {by!r}")
    return [int(i) for i in cand[np.argsort(key, kind="stable")[:n]]]


def row_dict(table: ParamTable, i: int) -> dict[str, Any]:
    """One parameter's numbers as a JSON-ready dict."""
    return jsonable({"name": table.name(i), "var": str(table.var[i]), "mean": table.mean[i],
                     "sd": table.sd[i], "mcse": table.mcse[i], "rhat": table.rhat[i],
                     "ess_bulk": table.ess_bulk[i], "ess_tail": table.ess_tail[i],
                     "index": i})


# ----------------------------------------------------------------------------- verdict


def _judge(s: DiagnosticSummary, table: ParamTable, stats: dict[str, Any], *, rhat_max: float,
           ess_min: float, bfmi_min: float, allow_divergences: int) -> None:
    """Fill ``failures``/``warnings``/``passed`` from the numbers."""
    live = ~table.constant
    rhat = np.where(live, table.rhat, np.nan)
    # Constant parameters (fixed zeros, unit scales) have no R-hat or ESS: never failures.
    bad = np.flatnonzero(live & (np.nan_to_num(rhat, nan=np.inf) > rhat_max))
    if len(bad):
        worst = bad[np.argmax(np.nan_to_num(rhat[bad], nan=np.inf))]
        s.failures.append(
            f"R-hat {fmt(float(rhat[worst]))} > {rhat_max} for {len(bad)} parameters "
            f"(worst: {table.name(worst)})"
        )
    for label, col in (("bulk", table.ess_bulk), ("tail", table.ess_tail)):
        vals = np.where(live, col, np.nan)
        low = np.flatnonzero(live & (np.nan_to_num(vals, nan=-1.0) < ess_min))
        if len(low):
            worst = low[np.argmin(np.nan_to_num(vals[low], nan=-1.0))]
            s.failures.append(
                f"{label} ESS {fmt_int(float(vals[worst]))} < {fmt_int(ess_min)} for "
                f"{len(low)} parameters (worst: {table.name(worst)})"
            )
    if stats["divergences"] > allow_divergences:
        per = stats.get("divergences_per_chain")
        s.failures.append(
            f"{stats['divergences']} divergent transitions "
            f"({100 * stats['divergences'] / max(1, stats['n_samples']):.1f}% of "
            f"{stats['n_samples']} draws; per chain {per}); allowed: {allow_divergences}"
        )
    if stats["bfmi"] is not None:
        low = [i for i, b in enumerate(stats["bfmi"]) if not b >= bfmi_min]
        if low:
            s.failures.append(
                f"E-BFMI {fmt(min(stats['bfmi'][i] for i in low))} < {bfmi_min} in chain(s) "
                f"{', '.join(str(i) for i in low)}: the momentum resampling explores the "
                "energy poorly (reparameterise or warm up longer)"
            )
    sat = stats.get("treedepth_saturated")
    if sat:
        s.warnings.append(
            f"{sat} of {stats['n_samples']} draws hit the maximum tree depth "
            f"{stats.get('max_tree_depth')} (efficiency, not validity, problem)"
        )
    s.passed = not s.failures


def convergence(
    tree: xr.DataTree,
    *,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    bfmi_min: float = 0.3,
    allow_divergences: int = 0,
    n_worst: int = 20,
) -> tuple[DiagnosticSummary, ParamTable, dict[str, Any], xr.Dataset]:
    """Diagnose every posterior scalar and judge the run.

    Parameters
    ----------
    tree : xarray.DataTree
        A bayesirt posterior.
    rhat_max, ess_min, bfmi_min, allow_divergences : float
        Thresholds of the verdict.
    n_worst : int, default 20
        Rows of ``worst`` and ``worst_ess``.

    Returns
    -------
    summary : DiagnosticSummary
        Numbers, verdict, failures and warnings (``next_steps`` is filled by the report).
    table : ParamTable
        Per-parameter diagnostics, named with :func:`labelled` ids.
    stats : dict
        :func:`bayesirt.diagnostics.convergence.sampler_stats`.
    posterior : xarray.Dataset
        The labelled posterior group.
    """
    post = labelled(tree)
    table = param_table(post)
    depth = tree.attrs.get("max_tree_depth")
    depth = int(np.asarray(depth).item()) if depth is not None and depth != "" else None
    stats = sampler_stats(tree["sample_stats"].to_dataset(), depth)
    live = ~table.constant
    s = DiagnosticSummary(thresholds={"rhat_max": rhat_max, "ess_min": ess_min,
                                      "bfmi_min": bfmi_min,
                                      "allow_divergences": allow_divergences})
    s.n_params = int(len(table))
    s.n_constant_params = int(table.constant.sum())
    s.n_raw_params = int((live & ~shown_mask(table)).sum())
    if live.any():
        # NaN R-hat of a varying parameter (one chain, too few draws) counts as the worst.
        rhat = np.where(live, np.nan_to_num(table.rhat, nan=np.inf), -np.inf)
        i_r = int(np.argmax(rhat))
        s.rhat_max, s.rhat_max_where = float(rhat[i_r]), table.name(i_r)
        for key, col in (("ess_bulk_min", table.ess_bulk), ("ess_tail_min", table.ess_tail)):
            vals = np.where(live, col, np.nan)
            if np.isfinite(vals).any():
                i = int(np.nanargmin(vals))
                setattr(s, key, float(vals[i]))
                setattr(s, f"{key}_where", table.name(i))
        with np.errstate(invalid="ignore", divide="ignore"):
            s.mcse_over_sd_max = float(np.nanmax(np.where(live, table.mcse / table.sd, np.nan)))
    s.divergences = stats["divergences"]
    s.divergences_per_chain = stats.get("divergences_per_chain")
    s.n_samples = stats["n_samples"]
    s.n_chains = stats["n_chains"]
    s.treedepth_saturated = stats["treedepth_saturated"]
    s.max_tree_depth = stats.get("max_tree_depth")
    s.bfmi = stats["bfmi"]
    s.bfmi_min = stats["bfmi_min"]
    _judge(s, table, stats, rhat_max=rhat_max, ess_min=ess_min, bfmi_min=bfmi_min,
           allow_divergences=allow_divergences)
    shown = shown_mask(table)
    s.worst = [row_dict(table, i) for i in worst_rows(table, shown, "rhat", n_worst)]
    s.worst_ess = [row_dict(table, i) for i in worst_rows(table, shown, "ess", n_worst)]
    return s, table, stats, post


def convergence_summary(
    tree: xr.DataTree,
    *,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    bfmi_min: float = 0.3,
    allow_divergences: int = 0,
    n_worst: int = 20,
) -> dict[str, Any]:
    """Headline convergence numbers of a posterior (no plots, no LOO): cheap enough for ``fit``.

    Parameters
    ----------
    tree : xarray.DataTree
        From :func:`bayesirt.posteriors.load` or :func:`bayesirt.posteriors.to_datatree`.
    rhat_max, ess_min, bfmi_min, allow_divergences : float
        Thresholds of the verdict.
    n_worst : int, default 20
        Worst parameters listed.

    Returns
    -------
    dict
        ``rhat_max``, ``ess_bulk_min``, ``ess_tail_min`` (each with a ``*_where`` name),
        ``divergences``, ``bfmi_min``, ``treedepth_saturated``, ``n_params``, ``passed``,
        ``failures``, ``warnings``, ``worst`` (highest R-hat) and ``worst_ess`` (lowest
        ESS), lists of dicts with name and numbers.
    """
    summary, _, _, _ = convergence(tree, rhat_max=rhat_max, ess_min=ess_min,
                                   bfmi_min=bfmi_min, allow_divergences=allow_divergences,
                                   n_worst=n_worst)
    keys = ("rhat_max", "rhat_max_where", "ess_bulk_min", "ess_bulk_min_where",
            "ess_tail_min", "ess_tail_min_where", "mcse_over_sd_max", "divergences",
            "n_samples", "bfmi_min", "bfmi", "treedepth_saturated", "n_params",
            "n_constant_params", "n_raw_params", "passed", "failures", "warnings", "worst",
            "worst_ess")
    return {k: getattr(summary, k) for k in keys}
