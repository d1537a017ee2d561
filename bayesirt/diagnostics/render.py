"""Lay a :class:`~bayesirt.diagnostics.compute.ReportData` and its figures out as one HTML page.

The first screen answers "can I use these draws?": the verdict, the numbers that decide it
(with where they occur) and what to do next. Tables after it list reported parameters by
their ids, without sampler coordinates or constants; provenance and configuration come last,
collapsed.
"""

from __future__ import annotations

import html
import json
from typing import Any

from bayesirt.diagnostics.compute import ReportData
from bayesirt.diagnostics.plots import Png
from bayesirt.diagnostics.summary import DiagnosticSummary, fmt, fmt_int

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:0 16px 40px;color:#222}
h1{font-size:1.4em;margin:.6em 0 .3em} h2{border-bottom:1px solid #ccc;padding-top:.6em}
.verdict{padding:10px 16px;border-radius:6px;margin:8px 0}
.pass{background:#e3f6e5;border:2px solid #2e7d32}.fail{background:#fdecea;border:2px solid #c62828}
.verdict b.big{font-size:1.8em;margin-right:.4em;vertical-align:middle}
table{border-collapse:collapse;font-size:.85em;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.verdict table{background:#fff}
.bad{color:#c62828;font-weight:bold} .warn{color:#a15c00;font-weight:bold}
.note{color:#555;font-size:.88em}
img{max-width:100%;height:auto;display:block;margin:6px 0}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:.8em}
nav ol{columns:3;margin:4px 0} details summary{cursor:pointer} code{white-space:nowrap}
"""

# After load, count images that did not decode, and those shown smaller than their pixels
# (their fonts then render below the sizes the figures set): headless tests read these back.
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, broken = 0, scaled = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!(imgs[i].complete && imgs[i].naturalWidth > 0)) { broken++; }
    else if (imgs[i].clientWidth + 1 < imgs[i].naturalWidth) { scaled++; }
  }
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-broken', String(broken));
  document.body.setAttribute('data-images-scaled', String(scaled));
  document.body.setAttribute('data-images-checked', '1');
});
"""


class _Html(str):
    """Markup that table cells insert as is (everything else is escaped)."""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _mark(text: str, cls: str | None) -> _Html:
    return _Html(f'<span class="{cls}">{_e(text)}</span>' if cls else _e(text))


def _img(png: Png, alt: str) -> str:
    return (f'<img alt="{_e(alt)}" width="{png.width}" height="{png.height}" '
            f'src="data:image/png;base64,{png.b64}">')


def _imgs(figs: dict[str, list[Png]], key: str, alt: str) -> str:
    return "".join(_img(p, alt) for p in figs.get(key, []))


def _table(header: list[str], rows: list[list[Any]], *, left: int = 1,
           text: tuple[int, ...] = (), tid: str | None = None) -> str:
    """Build a table; the first ``left`` columns and those in ``text`` are left-aligned.

    Cells are strings (escaped), :class:`_Html` (inserted as is) or numbers (3 decimals).
    """
    def cell(x: Any) -> str:
        if isinstance(x, _Html):
            return x
        return _e(x if isinstance(x, str) else fmt(x))

    def cls(i: int) -> str:
        return "l" if i < left or i in text else ""

    head = "".join(f'<th class="{cls(i)}">{_e(h)}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{cls(i)}">{cell(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    ident = f' id="{tid}"' if tid else ""
    return f"<table{ident}><tr>{head}</tr>{body}</table>"


def _prose(text: str) -> str:
    """Escape a sentence and show its `backticked` commands as code."""
    parts = _e(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _ess(x: Any, ess_min: float) -> _Html:
    return _mark(fmt_int(x), "bad" if not (x is not None and x >= ess_min) else None)


def _rhat(x: Any, rhat_max: float) -> _Html:
    return _mark(fmt(x), "bad" if not (x is not None and x <= rhat_max) else None)


def _status(ok: bool, warn_only: bool = False) -> _Html:
    if ok:
        return _mark("ok", None)
    return _mark("warn", "warn") if warn_only else _mark("FAIL", "bad")


# ----------------------------------------------------------------------------- first screen


def _verdict(s: DiagnosticSummary) -> str:
    th = s.thresholds
    rmax, emin, bmin = th["rhat_max"], th["ess_min"], th["bfmi_min"]
    allow = th["allow_divergences"]
    bfmi = s.bfmi or []
    worst_chain = min(range(len(bfmi)), key=lambda i: bfmi[i], default=None)
    per_chain = s.divergences_per_chain
    depth = "unknown" if s.treedepth_saturated is None else \
        f"{s.treedepth_saturated} of {s.n_samples}"
    rows = [
        ["max R-hat", _rhat(s.rhat_max, rmax), f"\u2264 {rmax}", s.rhat_max_where,
         _status(s.rhat_max <= rmax)],
        ["min bulk ESS", _ess(s.ess_bulk_min, emin), f"\u2265 {fmt_int(emin)}",
         s.ess_bulk_min_where, _status(s.ess_bulk_min >= emin)],
        ["min tail ESS", _ess(s.ess_tail_min, emin), f"\u2265 {fmt_int(emin)}",
         s.ess_tail_min_where, _status(s.ess_tail_min >= emin)],
        ["divergent transitions", _mark(f"{s.divergences} of {s.n_samples}",
                                        "bad" if s.divergences > allow else None),
         f"\u2264 {allow}", f"per chain {per_chain}" if per_chain else "",
         _status(s.divergences <= allow)],
        ["min E-BFMI", _mark(fmt(s.bfmi_min), "bad" if bfmi and not s.bfmi_min >= bmin else None),
         f"\u2265 {bmin}", "" if worst_chain is None else f"chain {worst_chain}",
         _status(not bfmi or s.bfmi_min >= bmin)],
        ["tree-depth hits", depth, "warning only",
         f"max depth {s.max_tree_depth}" if s.max_tree_depth else "",
         _status(not s.treedepth_saturated, warn_only=True)],
    ]
    cls, word = ("pass", "PASS") if s.passed else ("fail", "FAIL")
    lead = ("the chains converged by every check" if s.passed
            else f"{len(s.failures)} convergence check(s) failed: do not use these draws yet")
    fails = "".join(f"<li>{_e(f)}</li>" for f in s.failures)
    warns = "".join(f"<li>{_e(w)}</li>" for w in s.warnings)
    loo = "" if s.elpd_loo != s.elpd_loo else (
        f"<p class='note'>Not part of the verdict: elpd_loo {fmt(s.elpd_loo, 1)} "
        f"(se {fmt(s.elpd_loo_se, 1)})"
        + (f", held-out log-loss {fmt(s.heldout['log_loss'])} / AUC "
           f"{fmt(s.heldout['auc'])}" if s.heldout else "") + ".</p>")
    return (
        f'<div class="verdict {cls}" id="verdict"><b class="big">{word}</b>{_e(lead)}.'
        + _table(["check", "value", "threshold", "where", ""], rows, left=1, text=(3,),
                 tid="checks")
        + f"<p class='note'>Judged over all {s.n_params - s.n_constant_params} varying "
        "scalar parameters" + (f", including {s.n_raw_params} sampler coordinates "
                               "(non-centred <code>*_raw</code> sites)" if s.n_raw_params else "")
        + ": the same numbers <code>bayesirt fit</code> prints.</p>"
        + (f"<b>Failed</b><ul>{fails}</ul>" if fails else "")
        + (f'<div class="note"><b>Warnings</b><ul>{warns}</ul></div>' if warns else "")
        + loo + "</div>"
    )


def _next(s: DiagnosticSummary) -> str:
    items = "".join(f"<li>{_prose(t)}</li>" for t in s.next_steps)
    return f'<div id="next"><b>What to do next</b><ol>{items}</ol></div>'


# ----------------------------------------------------------------------------- sections


def _omitted_note(d: ReportData) -> str:
    om = d.omitted
    parts = []
    if om["n_constant"]:
        which = ", ".join(f"{v} \u00d7{n}" for v, n in om["constant_vars"].items())
        parts.append(f"{om['n_constant']} constant parameters ({which}: every draw equal, so "
                     "no R-hat or ESS)")
    if om["raw"]:
        names = ", ".join(r["var"] for r in om["raw"])
        rhat = max((r["rhat_max"] for r in om["raw"]), default=float("nan"))
        ess = min((min(r["ess_bulk_min"], r["ess_tail_min"]) for r in om["raw"]),
                  default=float("nan"))
        parts.append(f"{om['n_raw']} sampler coordinates ({names}: reparameterisations of "
                     f"the parameters shown; worst R-hat {fmt(rhat)}, lowest ESS "
                     f"{fmt_int(ess)}; they do count in the verdict)")
    if not parts:
        return ""
    return f"<p class='note'>Left out of these tables: {'; '.join(parts)}.</p>"


def _convergence(d: ReportData, figs: dict[str, list[Png]]) -> str:
    s, th = d.summary, d.summary.thresholds
    rmax, emin = th["rhat_max"], th["ess_min"]
    bfmi = ", ".join(f"chain {i}: {fmt(b)}" for i, b in enumerate(s.bfmi or []))
    sampler = [
        ["divergent transitions", f"{s.divergences} (per chain {s.divergences_per_chain})"],
        ["draws at max tree depth",
         "unknown" if s.treedepth_saturated is None else str(s.treedepth_saturated)],
        ["E-BFMI per chain", bfmi or "no energy recorded"],
        ["draws (chains x draws)", f"{s.n_chains} x {s.n_samples // max(1, s.n_chains)}"],
        ["target_accept, warm-up", f"{fmt(d.run.get('target_accept'), 2)}, "
                                   f"{d.run.get('warmup', 'unknown')}"],
    ]
    per_var = [[r["var"], str(r["n"]), _rhat(r["rhat_max"], rmax), r["rhat_where"],
                _ess(r["ess_bulk_min"], emin), _ess(r["ess_tail_min"], emin),
                r["mcse_sd_max"]] for r in d.per_variable]

    def rows(ws: list[dict[str, Any]]) -> list[list[Any]]:
        return [[w["name"], w["mean"], w["sd"], w["mcse"], _rhat(w["rhat"], rmax),
                 _ess(w["ess_bulk"], emin), _ess(w["ess_tail"], emin)] for w in ws]

    cols = ["parameter", "mean", "sd", "MCSE", "R-hat", "bulk ESS", "tail ESS"]
    out = (
        "<p>Rank-normalised split R-hat, bulk and tail (5%/95%) ESS and the MCSE of the mean "
        f"of every scalar parameter (thresholds: R-hat \u2264 {rmax}, ESS \u2265 "
        f"{fmt_int(emin)}).</p>"
        + _table(["sampler", "value"], sampler, left=2, tid="sampler")
        + _omitted_note(d)
        + "<h3>Per variable (worst value)</h3>"
        + _table(["variable", "parameters", "R-hat max", "at", "bulk ESS min", "tail ESS min",
                  "MCSE/sd max"], per_var, left=1, text=(3,), tid="per-variable")
        + f"<h3>Highest R-hat ({len(s.worst)} parameters)</h3>"
          "<p class='note'>Sorted by R-hat, highest first.</p>"
        + _table(cols, rows(s.worst), tid="worst-rhat")
        + f"<h3>Lowest ESS ({len(s.worst_ess)} parameters)</h3>"
          "<p class='note'>Sorted by the smaller of bulk and tail ESS, lowest first.</p>"
        + _table(cols, rows(s.worst_ess), tid="worst-ess")
    )
    if d.divergence_suspects:
        out += ("<h3>Where the divergences are</h3><p class='note'>Group-level parameters "
                "whose divergent draws sit furthest from the other draws (difference of means "
                "in posterior sd; log scale for positive parameters). A funnel's neck shows as "
                "a large negative shift of a scale.</p>"
                + _table(["parameter", "shift (sd)"],
                         [[r["name"] + (" (log)" if r["log"] else ""), f"{r['shift']:+.2f}"]
                          for r in d.divergence_suspects], tid="divergence-suspects"))
    if "hyper_trace" in figs:
        out += ("<h3>Group-level parameters: trace and rank plots</h3>"
                + _imgs(figs, "hyper_trace", "group-level parameters"))
    if "worst_trace" in figs:
        out += ("<h3>Worst parameters: trace and rank plots</h3>"
                + _imgs(figs, "worst_trace", "worst parameters"))
    return out


def _parameters(d: ReportData, figs: dict[str, list[Png]]) -> str:
    out = ""
    if d.forest is not None:
        f = d.forest
        out += (f'<h3 id="forest">Model abilities per benchmark ({len(f["model_names"])} of '
                f"{f['n_models']} models)</h3><p class='note'>Rows sorted by "
                f"{_e(f['order_by'])}, best on top. Grey: the model has no responses on that "
                "benchmark; its ability there is drawn from the cross-benchmark prior."
                + (f" {_e(f['note'])}; the dashed line marks the cut." if f["note"] else "")
                + "</p>"
                + _imgs(figs, "forest", "ability forest plot"))
    if "item_params" in figs:
        out += ("<h3>Item difficulty and discrimination by benchmark</h3>"
                + _imgs(figs, "item_params", "item parameters"))
    bp = d.bench_priors
    if bp.get("rows"):
        rows = [[r["var"]] + [f"{c[0]:.2f} [{c[1]:.2f}, {c[2]:.2f}]" if c else "\u2014"
                              for c in r["cells"]] for r in bp["rows"]]
        out += ("<h3>Benchmark-level parameters: median [90% interval]</h3>"
                + _table(["variable", *d.bench_names], rows, tid="bench-priors"))
        if bp.get("constant"):
            out += (f"<p class='note'>Left out: {len(bp['constant'])} constant variables "
                    f"({', '.join(bp['constant'])}), fixed by this model.</p>")
    return out


def _ppc(d: ReportData, figs: dict[str, list[Png]]) -> str:
    if d.ppc is None:
        return f"<p>Skipped: {_e(d.skipped.get('ppc', 'no observed cells'))}.</p>"
    cov_b, cov_m = d.ppc.coverage("benchmark"), d.ppc.coverage("model")
    return (f"<p>{d.ppc.n_draws} replicated data sets (responses drawn from the posterior on "
            "the observed model-item pairs). Observed accuracy inside the replicated 90% "
            f"interval: {fmt(100 * cov_b, 0)}% of benchmarks, {fmt(100 * cov_m, 0)}% of "
            "models.</p>"
            + _imgs(figs, "ppc_benchmark", "ppc per benchmark")
            + _imgs(figs, "ppc_model", "ppc per model")
            + "<h3>Item-level score distribution</h3>"
            + _imgs(figs, "item_hist", "item accuracy histograms"))


def _loo(d: ReportData) -> str:
    loo = d.loo
    if loo is None:
        return f"<p>Skipped: {_e(d.skipped.get('loo', 'no observed cells'))}.</p>"
    rows = [["method", loo["method"]], ["elpd_loo", loo["elpd_loo"]], ["se", loo["se"]],
            ["p_loo", loo["p_loo"]], ["observations", str(loo["n_obs"])],
            ["observations evaluated", str(loo["subsample_size"])],
            ["posterior draws", str(loo["n_samples"])], ["r_eff used", loo["r_eff"]],
            ["log-likelihood", loo["loglik_source"]]]
    if "subsampling_se" in loo:
        rows.append(["subsampling se", loo["subsampling_se"]])
    pk = loo["pareto_k"]
    krows = [[f"(-inf, {pk['threshold']:.2f}] good", str(pk["good"])],
             [f"({pk['threshold']:.2f}, 1] bad", str(pk["bad"])],
             ["(1, inf) very bad", str(pk["very_bad"])], ["max k", pk["max"]]]
    return (_table(["quantity", "value"], rows) + "<h3>Pareto k</h3>"
            + _table(["range", "count"], krows))


def _heldout(d: ReportData, figs: dict[str, list[Png]]) -> str:
    h = d.heldout
    if h is None:
        return f"<p>Skipped: {_e(d.skipped.get('heldout', 'no test data'))}.</p>"
    m = h["metrics"]
    by = [[b["benchmark"], str(b["n"]), b["log_loss"], b["auc"], b["brier"], b["ece"]]
          for b in h["by_benchmark"]]
    return (f"<p>{m['n']} test pairs (new items) from {_e(h['test_dir'])}.</p>"
            + _table(["metric", "value"], [["log-loss", m["log_loss"]], ["ROC-AUC", m["auc"]],
                                          ["Brier", m["brier"]], ["ECE (10 bins)", m["ece"]],
                                          ["base rate", m["base_rate"]]])
            + _table(["benchmark", "pairs", "log-loss", "AUC", "Brier", "ECE"], by)
            + _imgs(figs, "reliability", "reliability diagram"))


def _provenance(d: ReportData) -> str:
    r = d.run
    line = (f"{r.get('model_name', '?')}, {r.get('chains', '?')} chains \u00d7 "
            f"{r.get('warmup', '?')} warm-up + {r.get('draws', '?')} draws, seed "
            f"{r.get('seed', '?')}, created {r.get('created_at', '?')}; file "
            f"{d.file_size_mb:.1f} MB")
    rows = [[k, str(v)] for k, v in d.provenance]
    rows += [["posterior file", d.posterior_file], ["file size (MB)", f"{d.file_size_mb:.1f}"]]
    return (f"<p>{_e(line)}.</p><details><summary>Attributes and full configuration"
            "</summary>" + _table(["attribute", "value"], rows, left=2, tid="provenance-table")
            + "<pre>" + _e(json.dumps(d.config, indent=2, sort_keys=True)) + "</pre></details>")


def _about(d: ReportData) -> str:
    th = d.summary.thresholds
    return (_table(["step", "seconds"], [[k, f"{v:.2f}"] for k, v in d.summary.timings.items()])
            + f"<p class='note'>strict mode: {d.strict}. Thresholds: R-hat &le; "
            f"{th['rhat_max']}, ESS &ge; {fmt_int(th['ess_min'])}, E-BFMI &ge; "
            f"{th['bfmi_min']}, divergences &le; {th['allow_divergences']}. Sizes in MB are "
            "10^6 bytes, as <code>bayesirt fit</code> prints them.</p>")


def render_html(d: ReportData, figs: dict[str, list[Png]]) -> str:
    """Build the report page: verdict and next steps first, then the sections, provenance last.

    Parameters
    ----------
    d : ReportData
        From :func:`bayesirt.diagnostics.compute.compute`, with ``summary.timings`` set.
    figs : dict of str to list of Png
        From :func:`bayesirt.diagnostics.plots.report_figures`.

    Returns
    -------
    str
        A self-contained HTML document (images inline, no network requests).
    """
    sections = [("convergence", "Convergence", _convergence(d, figs)),
                ("parameters", "Abilities and item parameters", _parameters(d, figs)),
                ("ppc", "Posterior predictive checks", _ppc(d, figs)),
                ("loo", "PSIS-LOO", _loo(d))]
    if d.heldout is not None or "heldout" in d.skipped:
        sections.append(("heldout", "Held-out metrics (new items)", _heldout(d, figs)))
    sections += [("provenance", "Run provenance", _provenance(d)),
                 ("about", "About this report", _about(d))]
    toc = "".join(f'<li><a href="#{sid}">{_e(name)}</a></li>' for sid, name, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{_e(name)}</h2>{content}</section>'
                   for sid, name, content in sections)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(d.title)}</title><style>{_CSS}</style>"
            f"<script>{_SCRIPT}</script></head><body><h1>{_e(d.title)}</h1>"
            f"{_verdict(d.summary)}{_next(d.summary)}<nav><b>Contents</b><ol>{toc}</ol></nav>"
            f"{body}</body></html>")
