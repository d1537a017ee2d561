"""The diagnostic report: one self-contained HTML file plus a JSON of headline numbers."""

from __future__ import annotations

import html
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm import tqdm

from bayesirt.diagnostics import checks, heldout, plots
from bayesirt.diagnostics.convergence import ParamTable, param_table, sampler_stats
from bayesirt.posteriors import load, posterior_attrs

#: Hyperparameters whose trace and rank plots are always shown.
HYPER_VARS = ("mu_difficulty", "sigma_difficulty", "mu_log_discrimination",
              "sigma_log_discrimination", "ability_pop_loc", "ability_pop_scale", "guess")


@dataclass
class DiagnosticSummary:
    """Headline numbers of a posterior's diagnostics, and the verdict.

    Attributes
    ----------
    rhat_max, ess_bulk_min, ess_tail_min, mcse_over_sd_max : float
        Worst values over all non-constant posterior parameters.
    n_params, n_constant_params : int
        Scalar parameters diagnosed, and those skipped because every draw is equal.
    divergences, n_samples : int
        Divergent transitions and total post-warmup draws.
    treedepth_saturated : int or None
        Draws that hit the tree-depth limit (None when unknown).
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
    """

    rhat_max: float = float("nan")
    ess_bulk_min: float = float("nan")
    ess_tail_min: float = float("nan")
    mcse_over_sd_max: float = float("nan")
    n_params: int = 0
    n_constant_params: int = 0
    divergences: int = 0
    n_samples: int = 0
    treedepth_saturated: int | None = None
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
    worst: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and inf become None)."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float | np.floating):
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.{digits}f}" if abs(x) < 1e5 else f"{x:.4g}"
    return str(x)


def _worst_rows(table: ParamTable, rhat_max: float, ess_min: float, n: int) -> list[int]:
    """Return the n worst parameters: largest of R-hat excess and ESS shortfall."""
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.fmax((table.rhat - 1) / max(rhat_max - 1, 1e-9),
                        ess_min / np.fmin(table.ess_bulk, table.ess_tail))
    score = np.where(table.constant, -np.inf, np.nan_to_num(score, nan=np.inf))
    if len(score) == 0:
        return []
    top = np.argpartition(-score, min(n, len(score) - 1))[:n] if len(score) > n else \
        np.arange(len(score))
    return [int(i) for i in top[np.argsort(-score[top])]]


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
            f"R-hat {_fmt(float(rhat[worst]))} > {rhat_max} for {len(bad)} parameters "
            f"(worst: {table.name(worst)})"
        )
    for label, col in (("bulk", table.ess_bulk), ("tail", table.ess_tail)):
        vals = np.where(live, col, np.nan)
        low = np.flatnonzero(live & (np.nan_to_num(vals, nan=-1.0) < ess_min))
        if len(low):
            worst = low[np.argmin(np.nan_to_num(vals[low], nan=-1.0))]
            s.failures.append(
                f"{label} ESS {_fmt(float(vals[worst]), 0)} < {ess_min} for {len(low)} "
                f"parameters (worst: {table.name(worst)})"
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
                f"E-BFMI {_fmt(min(stats['bfmi'][i] for i in low))} < {bfmi_min} in chain(s) "
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
        ``rhat_max``, ``ess_bulk_min``, ``ess_tail_min``, ``divergences``, ``bfmi_min``,
        ``treedepth_saturated``, ``n_params``, ``passed``, ``failures``, ``warnings``,
        ``worst`` (list of dicts with name and numbers).
    """
    summary, _, _ = _convergence(tree, rhat_max=rhat_max, ess_min=ess_min, bfmi_min=bfmi_min,
                                 allow_divergences=allow_divergences, n_worst=n_worst)
    keys = ("rhat_max", "ess_bulk_min", "ess_tail_min", "mcse_over_sd_max", "divergences",
            "n_samples", "bfmi_min", "bfmi", "treedepth_saturated", "n_params",
            "n_constant_params", "passed", "failures", "warnings", "worst")
    return {k: getattr(summary, k) for k in keys}


def _convergence(tree, *, rhat_max, ess_min, bfmi_min, allow_divergences, n_worst):
    post = tree["posterior"].to_dataset()
    table = param_table(post)
    attrs = tree.attrs
    depth = attrs.get("max_tree_depth")
    depth = int(np.asarray(depth).item()) if depth is not None and depth != "" else None
    stats = sampler_stats(tree["sample_stats"].to_dataset(), depth)
    live = ~table.constant
    s = DiagnosticSummary(thresholds={"rhat_max": rhat_max, "ess_min": ess_min,
                                      "bfmi_min": bfmi_min,
                                      "allow_divergences": allow_divergences})
    s.n_params = int(len(table))
    s.n_constant_params = int(table.constant.sum())
    if live.any():
        s.rhat_max = float(np.nanmax(np.where(live, np.nan_to_num(table.rhat, nan=np.inf),
                                              np.nan)))
        s.ess_bulk_min = float(np.nanmin(np.where(live, table.ess_bulk, np.nan)))
        s.ess_tail_min = float(np.nanmin(np.where(live, table.ess_tail, np.nan)))
        with np.errstate(invalid="ignore", divide="ignore"):
            s.mcse_over_sd_max = float(np.nanmax(np.where(live, table.mcse / table.sd, np.nan)))
    s.divergences = stats["divergences"]
    s.n_samples = stats["n_samples"]
    s.treedepth_saturated = stats["treedepth_saturated"]
    s.bfmi = stats["bfmi"]
    s.bfmi_min = stats["bfmi_min"]
    _judge(s, table, stats, rhat_max=rhat_max, ess_min=ess_min, bfmi_min=bfmi_min,
           allow_divergences=allow_divergences)
    for i in _worst_rows(table, rhat_max, ess_min, n_worst):
        s.worst.append({"name": table.name(i), "mean": table.mean[i], "sd": table.sd[i],
                        "mcse": table.mcse[i], "rhat": table.rhat[i],
                        "ess_bulk": table.ess_bulk[i], "ess_tail": table.ess_tail[i],
                        "index": i})
    s.worst = [_jsonable(w) for w in s.worst]
    return s, table, stats


def _param_draws(post: xr.Dataset, table: ParamTable, i: int) -> np.ndarray:
    da = post[str(table.var[i])].transpose("chain", "draw", ...)
    vals = np.asarray(da.values)
    return vals.reshape(vals.shape[0], vals.shape[1], -1)[:, :, int(table.flat_index[i])]


# ----------------------------------------------------------------------------- HTML


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:0 16px 40px;color:#222}
h1{font-size:1.5em;margin:.6em 0 .3em} h2{border-bottom:1px solid #ccc;padding-top:.6em}
.verdict{padding:14px 18px;border-radius:6px;margin:10px 0;font-size:1.05em}
.pass{background:#e3f6e5;border:2px solid #2e7d32}.fail{background:#fdecea;border:2px solid #c62828}
.verdict b.big{font-size:1.6em;margin-right:.5em}
table{border-collapse:collapse;font-size:.85em;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.bad{color:#c62828;font-weight:bold} .note{color:#666;font-size:.85em}
img{max-width:100%;display:block;margin:6px 0}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:.8em}
nav ol{columns:2}
"""

# After load, count images that did not decode: headless tests read these attributes back.
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, broken = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!(imgs[i].complete && imgs[i].naturalWidth > 0)) { broken++; }
  }
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-broken', String(broken));
  document.body.setAttribute('data-images-checked', '1');
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>'
                   for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = "l" if i < left else ""
            text = cell if isinstance(cell, str) and cell.startswith("<") else _e(_fmt(cell))
            cells.append(f'<td class="{cls}">{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _bad(x: Any, is_bad: bool) -> str:
    return f'<span class="bad">{_e(_fmt(x))}</span>' if is_bad else f"<span>{_e(_fmt(x))}</span>"


def _render(sections: list[tuple[str, str, str]], s: DiagnosticSummary, title: str) -> str:
    cls = "pass" if s.passed else "fail"
    word = "PASS" if s.passed else "FAIL"
    items = "".join(f"<li>{_e(f)}</li>" for f in s.failures)
    warns = "".join(f"<li>{_e(w)}</li>" for w in s.warnings)
    verdict = (
        f'<div class="verdict {cls}" id="verdict"><b class="big">{word}</b>'
        f"R-hat max {_fmt(s.rhat_max)}, bulk ESS min {_fmt(s.ess_bulk_min, 0)}, tail ESS min "
        f"{_fmt(s.ess_tail_min, 0)}, divergences {s.divergences}, E-BFMI min "
        f"{_fmt(s.bfmi_min)}, elpd_loo {_fmt(s.elpd_loo, 1)}"
        + (f"<ul>{items}</ul>" if items else "")
        + (f'<div class="note">Warnings:<ul>{warns}</ul></div>' if warns else "")
        + "</div>"
    )
    toc = "".join(f'<li><a href="#{sid}">{_e(name)}</a></li>' for sid, name, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{_e(name)}</h2>{content}</section>'
                   for sid, name, content in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f"<script>{_SCRIPT}</script></head><body>"
        f"<h1>{_e(title)}</h1>{verdict}<nav><b>Contents</b><ol>{toc}</ol></nav>{body}"
        "</body></html>"
    )


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def run_diagnose(
    posterior_path: str | os.PathLike,
    out_html: str | os.PathLike,
    *,
    json_path: str | os.PathLike | None = None,
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
    seed: int = 0,
    progress: bool = True,
) -> DiagnosticSummary:
    """Diagnose a saved posterior: write the HTML report (and JSON), return the summary.

    Parameters
    ----------
    posterior_path : path-like
        A file written by ``bayesirt.posteriors.save``.
    out_html : path-like
        The report (one self-contained HTML file: images inline, no network requests).
    json_path : path-like, optional
        Also write the headline numbers as JSON.
    test_dir : path-like, optional
        Data-set root (or its test/ folder) with ``reference/ground_truth.csv``: adds
        held-out log-loss, AUC, Brier and a reliability diagram with ECE.
    strict : bool, default False
        Recorded in the report; the caller (CLI) exits non-zero when ``not passed``.
    rhat_max, ess_min, bfmi_min, allow_divergences : float
        Thresholds of the verdict.
    max_plot_params : int, default 8
        Worst parameters shown as trace and rank plots.
    ppc_draws : int, default 200
        Posterior draws replicated for the predictive checks.
    loo_full_max, loo_subsample : int
        Exact PSIS-LOO up to this many observations; above, a subsample of this size.
    seed : int, default 0
        Seeds the replicated responses and the LOO subsample (numpy Generator).
    progress : bool, default True
        Show a tqdm progress bar on stderr.

    Returns
    -------
    DiagnosticSummary
        Headline numbers, ``passed`` and ``failures``.

    Raises
    ------
    FileNotFoundError
        If the posterior (or the test data) does not exist.
    ValueError
        If the file is not a readable bayesirt posterior.
    """
    t_start = time.perf_counter()
    rng = np.random.default_rng(seed)
    steps = ["load", "convergence", "plots", "ppc", "loo", "heldout", "write"]
    bar = tqdm(total=len(steps), desc="diagnose", disable=not progress, leave=False)
    timings: dict[str, float] = {}

    def tick(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 2)
        bar.set_postfix_str(name)
        bar.update(1)
        return time.perf_counter()

    t = time.perf_counter()
    tree = load(posterior_path)
    attrs = posterior_attrs(tree)
    post = tree["posterior"].to_dataset()
    t = tick("load", t)

    s, table, stats = _convergence(tree, rhat_max=rhat_max, ess_min=ess_min,
                                   bfmi_min=bfmi_min, allow_divergences=allow_divergences,
                                   n_worst=20)
    t = tick("convergence", t)

    sections: list[tuple[str, str, str]] = []
    # --- provenance
    prov_rows = [[k, attrs.get(k)] for k in (
        "model_name", "bayesirt_version", "created_at", "seed", "device", "chains", "warmup",
        "draws", "max_tree_depth", "jax_version", "numpyro_version", "fingerprint",
        "data_source", "bayesirt_schema_version") if k in attrs]
    prov_rows.append(["posterior file", str(Path(posterior_path).resolve())])
    prov_rows.append(["file size (MB)", os.path.getsize(posterior_path) / 2**20])
    sections.append(("provenance", "Run provenance",
                     _table(["attribute", "value"], prov_rows, left=2)
                     + "<p>Full configuration:</p><pre>"
                     + _e(json.dumps(attrs.get("config", {}), indent=2, sort_keys=True))
                     + "</pre>"))

    # --- convergence
    live = ~table.constant
    n_live = int(live.sum())
    with np.errstate(invalid="ignore"):
        n_rhat_bad = int(np.sum(np.nan_to_num(table.rhat[live], nan=np.inf) > rhat_max))
        n_ess_bad = int(np.sum(np.fmin(table.ess_bulk[live], table.ess_tail[live]) < ess_min))
    per_var = []
    for var in dict.fromkeys(table.var.tolist()):
        sel = (table.var == var) & live
        if not sel.any():
            per_var.append([var, int((table.var == var).sum()), "constant", "", "", ""])
            continue
        per_var.append([var, int((table.var == var).sum()),
                        _bad(float(np.nanmax(table.rhat[sel])),
                             np.nanmax(table.rhat[sel]) > rhat_max),
                        _bad(float(np.nanmin(table.ess_bulk[sel])),
                             np.nanmin(table.ess_bulk[sel]) < ess_min),
                        _bad(float(np.nanmin(table.ess_tail[sel])),
                             np.nanmin(table.ess_tail[sel]) < ess_min),
                        float(np.nanmax(table.mcse[sel] / table.sd[sel]))])
    worst_rows = [[w["name"], w["mean"], w["sd"], w["mcse"],
                   _bad(w["rhat"], (w["rhat"] or np.inf) > rhat_max),
                   _bad(w["ess_bulk"], (w["ess_bulk"] or 0) < ess_min),
                   _bad(w["ess_tail"], (w["ess_tail"] or 0) < ess_min)] for w in s.worst]
    bfmi_txt = ", ".join(f"chain {i}: {_fmt(b)}" for i, b in enumerate(s.bfmi or []))
    sampler_rows = [
        ["divergent transitions", _bad(s.divergences, s.divergences > allow_divergences)],
        ["draws at max tree depth", s.treedepth_saturated if s.treedepth_saturated is not None
         else "unknown"],
        ["E-BFMI per chain", bfmi_txt or "no energy recorded"],
        ["draws (chains x draws)", f"{stats['n_chains']} x {s.n_samples // max(1,
                                                                 stats['n_chains'])}"],
    ]
    conv_html = (
        f"<p>Rank-normalised split R-hat, bulk and tail (5%/95%) ESS and MCSE of the mean over "
        f"all {s.n_params} scalar posterior parameters ({s.n_constant_params} constant ones "
        f"skipped). {n_rhat_bad} of {n_live} have R-hat &gt; {rhat_max}; {n_ess_bad} have "
        f"bulk or tail ESS &lt; {ess_min}.</p>"
        + _table(["sampler", "value"], sampler_rows, left=1)
        + "<h3>Per variable (worst value)</h3>"
        + _table(["variable", "size", "R-hat max", "bulk ESS min", "tail ESS min",
                  "MCSE/sd max"], per_var)
        + "<h3>Worst 20 parameters</h3>"
        + _table(["parameter", "mean", "sd", "MCSE", "R-hat", "bulk ESS", "tail ESS"],
                 worst_rows)
    )
    hyper_names, hyper_draws = [], []
    for var in HYPER_VARS:
        if var not in post:
            continue
        sel = np.flatnonzero((table.var == var) & live)
        for i in sel:
            hyper_names.append(table.name(int(i)))
            hyper_draws.append(_param_draws(post, table, int(i)))
    if hyper_names:
        conv_html += "<h3>Hyperparameters: trace and rank plots</h3>" + _img(
            plots.trace_rank(hyper_names, hyper_draws, "hyperparameters"), "hyperparameters")
    worst_idx = [w["index"] for w in s.worst[:max_plot_params]]
    if worst_idx:
        conv_html += "<h3>Worst parameters: trace and rank plots</h3>" + _img(
            plots.trace_rank([table.name(i) for i in worst_idx],
                             [_param_draws(post, table, i) for i in worst_idx],
                             f"{len(worst_idx)} worst parameters"), "worst parameters")
    sections.append(("convergence", "Convergence", conv_html))

    # --- abilities and item parameters
    bench_names = ([str(b) for b in post.coords["benchmark"].values]
                   if "benchmark" in post.coords else
                   [str(i) for i in range(post["ability"].shape[-1])])
    model_names = ([str(m) for m in post.coords["model"].values] if "model" in post.coords
                   else [str(i) for i in range(post["ability"].shape[-2])])
    obs = None
    try:
        obs = checks.observations(tree)
    except ValueError as exc:
        s.warnings.append(f"posterior predictive checks and LOO skipped: {exc}")
    ability = np.asarray(post["ability"].transpose("chain", "draw", ...).values)
    ability = ability.reshape((-1, *ability.shape[2:]))
    q = np.quantile(ability, [0.05, 0.5, 0.95], axis=0)  # (3, model, benchmark)
    panels_labels, panels_q = [], []
    for k in range(len(bench_names)):
        if obs is not None:
            seen = np.unique(obs.model_idx[obs.obs_benchmark == k])
        else:
            seen = np.arange(len(model_names))
        panels_labels.append([model_names[m] for m in seen])
        panels_q.append(q[:, seen, k])
    params_html = "<h3>Model abilities per benchmark (models observed on it)</h3>" + _img(
        plots.forest(bench_names, panels_labels, panels_q), "ability forest plot")
    if obs is not None and "difficulty" in post:
        diff_mean = np.asarray(post["difficulty"].mean(("chain", "draw")).values)
        ld = (np.asarray(post["log_discrimination"].mean(("chain", "draw")).values)
              if "log_discrimination" in post else None)
        if ld is not None and np.allclose(ld, 0):
            ld = None  # Rasch: discrimination is fixed at 1
        item_bench = obs.item_benchmark[: len(diff_mean)]
        params_html += ("<h3>Item difficulty and discrimination by benchmark</h3>"
                        + _img(plots.item_params(bench_names, item_bench, diff_mean, ld),
                               "item parameters"))
    hyper_rows = []
    for var in HYPER_VARS:
        if var in post and post[var].dims[2:] == ("benchmark",):
            vals = np.asarray(post[var].transpose("chain", "draw", ...).values)
            vals = vals.reshape(-1, vals.shape[-1])
            qq = np.quantile(vals, [0.05, 0.5, 0.95], axis=0)
            hyper_rows.append([var] + [f"{qq[1, k]:.2f} [{qq[0, k]:.2f}, {qq[2, k]:.2f}]"
                                       for k in range(len(bench_names))])
    if hyper_rows:
        params_html += ("<h3>Benchmark-level priors: median [90% interval]</h3>"
                        + _table(["variable", *bench_names], hyper_rows))
    t = tick("plots", t)

    # --- PPC
    if obs is not None:
        ppc = checks.posterior_predictive(post, obs, rng, n_draws=ppc_draws)
        cov_b, cov_m = ppc.coverage("benchmark"), ppc.coverage("model")
        ppc_html = (
            f"<p>{ppc.n_draws} replicated data sets (responses drawn from the posterior on the "
            f"observed model-item pairs). Observed accuracy inside the replicated 90% "
            f"interval: {_fmt(100 * cov_b, 0)}% of benchmarks, {_fmt(100 * cov_m, 0)}% of "
            "models.</p>"
            + _img(plots.interval_plot(bench_names, ppc.benchmark_obs, ppc.benchmark_rep,
                                       "accuracy per benchmark"), "ppc per benchmark")
            + _img(plots.interval_plot(model_names, ppc.model_obs, ppc.model_rep,
                                       "accuracy per model"), "ppc per model")
            + "<h3>Item-level score distribution</h3>"
            + _img(plots.item_hist(bench_names, ppc.bins, ppc.item_hist_obs,
                                   ppc.item_hist_rep), "item accuracy histograms")
        )
        s.loo["ppc_coverage_benchmark"] = cov_b
        s.loo["ppc_coverage_model"] = cov_m
    else:
        ppc_html = "<p>Skipped: the posterior lacks the observed cells.</p>"
    sections.append(("ppc", "Posterior predictive checks", ppc_html))
    sections.append(("parameters", "Abilities and item parameters", params_html))
    t = tick("ppc", t)

    # --- LOO
    if obs is not None:
        with np.errstate(invalid="ignore"):
            r_eff = float(np.nanmean(np.fmin(table.ess_bulk[live] / max(1, s.n_samples), 1.0)))
        loo = checks.compute_loo(tree, obs, rng, r_eff=r_eff if math.isfinite(r_eff) else 1.0,
                                 full_max=loo_full_max, subsample=loo_subsample)
        ppc_cov = {k: s.loo[k] for k in list(s.loo)}
        s.loo = {**loo, **ppc_cov}
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
        rows = [["method", loo["method"]], ["elpd_loo", loo["elpd_loo"]],
                ["se", loo["se"]], ["p_loo", loo["p_loo"]],
                ["observations", loo["n_obs"]], ["observations evaluated", loo["subsample_size"]],
                ["posterior draws", loo["n_samples"]], ["r_eff used", loo["r_eff"]],
                ["log-likelihood", loo["loglik_source"]]]
        if "subsampling_se" in loo:
            rows.append(["subsampling se", loo["subsampling_se"]])
        krows = [[f"(-inf, {pk['threshold']:.2f}] good", pk["good"]],
                 [f"({pk['threshold']:.2f}, 1] bad", pk["bad"]], ["(1, inf) very bad",
                                                                  pk["very_bad"]],
                 ["max k", pk["max"]]]
        loo_html = (_table(["quantity", "value"], rows, left=1) + "<h3>Pareto k</h3>"
                    + _table(["range", "count"], krows))
    else:
        loo_html = "<p>Skipped: the posterior lacks the observed cells.</p>"
    sections.append(("loo", "PSIS-LOO", loo_html))
    t = tick("loo", t)

    # --- held-out
    if test_dir is not None:
        paths = heldout.locate(test_dir)
        pred, reason = heldout.heldout_predictions(tree, posterior_path, paths)
        if pred is None:
            s.warnings.append(f"held-out metrics skipped: {reason}")
            held_html = f"<p>Skipped: {_e(reason)}.</p>"
        else:
            y, p, joined = heldout.join_truth(pred, paths["ground_truth"])
            s.heldout = heldout.metrics(y, p)
            rel = heldout.reliability(y, p)
            by_bench = []
            for name, grp in joined.groupby("benchmark"):
                yy = grp["label" if "label" in grp else "response"].to_numpy()
                m = heldout.metrics(yy, grp["predicted_probability"].to_numpy())
                by_bench.append([name, m["n"], m["log_loss"], m["auc"], m["brier"], m["ece"]])
            hm = s.heldout
            held_html = (
                f"<p>{hm['n']} test pairs (new items) from {_e(paths['test_dir'])}.</p>"
                + _table(["metric", "value"], [["log-loss", hm["log_loss"]], ["ROC-AUC",
                         hm["auc"]], ["Brier", hm["brier"]], ["ECE (10 bins)", hm["ece"]],
                         ["base rate", hm["base_rate"]]])
                + _table(["benchmark", "pairs", "log-loss", "AUC", "Brier", "ECE"], by_bench)
                + _img(plots.reliability_plot(rel), "reliability diagram"))
        sections.append(("heldout", "Held-out metrics (new items)", held_html))
    t = tick("heldout", t)

    timings["total"] = round(time.perf_counter() - t_start, 2)
    s.timings = timings
    sections.append(("about", "About this report", _table(
        ["step", "seconds"], [[k, v] for k, v in timings.items()])
        + f"<p class='note'>strict mode: {strict}. Thresholds: R-hat &le; {rhat_max}, "
        f"ESS &ge; {ess_min}, E-BFMI &ge; {bfmi_min}, divergences &le; {allow_divergences}."
        "</p>"))
    title = f"bayesirt diagnostics: {attrs.get('model_name', '?')} ({Path(posterior_path).name})"
    _atomic_write(Path(out_html), _render(sections, s, title))
    if json_path is not None:
        _atomic_write(Path(json_path), json.dumps(s.to_dict(), indent=2, sort_keys=True))
    tick("write", t)
    bar.close()
    tree.close()
    return s
