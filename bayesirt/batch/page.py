"""The comparison page of a batch: one self-contained HTML file (plots inline as base64 PNG).

The page holds no external URL. After load, a small script counts the images that did not
decode and writes ``data-images-total`` / ``data-images-broken`` on ``<body>``, which a
headless browser test reads back (as the diagnostic report does).
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1250px;color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:4px;
margin-top:1.6em} h3{margin-top:1.2em}
table{border-collapse:collapse;font-size:.85em;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.bad{color:#c62828;font-weight:bold} .ok{color:#2e7d32}
.v{display:block;text-align:left} .note{color:#666;font-size:.85em}
img{max-width:100%;display:block;margin:8px 0}
"""

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

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
            "#17becf", "#7f7f7f", "#bcbd22")


def _e(x: Any) -> str:
    return html.escape(str(x))


def _f(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _png(fig: Any, alt: str) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96)
    b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    """HTML table; cells are already-escaped HTML."""
    head = "".join(f'<th class="{"l" if i < left else ""}">{_e(h)}</th>'
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _colours(group: dict[str, Any]) -> dict[str, str]:
    names = list(dict.fromkeys(row["display"] for row in group["fits"]))
    return {name: _COLOURS[i % len(_COLOURS)] for i, name in enumerate(names)}


def elpd_plot(group: dict[str, Any]) -> str:
    """Elpd with +-1 and +-2 se, and the elpd difference to the best fit with +-1 and +-2 dse."""
    from matplotlib.figure import Figure

    table = group["loo"]["table"][::-1]  # best at the top
    display = {row["name"]: row["display"] for row in group["fits"]}
    colour = _colours(group)
    fig = Figure(figsize=(11, 1.2 + 0.38 * len(table)), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(table))
    for ax, key, err, title in ((left, "elpd", "se", "elpd_loo (higher is better), +-1/2 se"),
                                (right, "elpd_diff", "dse",
                                 "elpd difference to the best, +-1/2 paired se")):
        for i, entry in enumerate(table):
            c = colour[display[entry["name"]]]
            ax.errorbar(entry[key], i, xerr=2 * entry[err], fmt="none", ecolor=c, lw=1)
            ax.errorbar(entry[key], i, xerr=entry[err], fmt="o", color=c, ecolor=c, lw=3,
                        ms=5)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    right.axvline(0, color="#888", lw=1, ls="--")
    left.set_yticks(y, [e["name"] for e in table], fontsize=8)
    return _png(fig, "elpd_loo by fit")


def heldout_plot(group: dict[str, Any]) -> str:
    """Held-out log-loss of each fit, one row per variant (seeds side by side), mean marked."""
    from matplotlib.figure import Figure

    rows = [r for r in group["fits"] if r["log_loss"] is not None]
    variants = list(dict.fromkeys(r["display"] for r in
                                  sorted(rows, key=lambda r: r["log_loss"])))[::-1]
    colour = _colours(group)
    fig = Figure(figsize=(11, 1.3 + 0.42 * len(variants)), layout="constrained")
    ax = fig.subplots()
    for i, name in enumerate(variants):
        values = [r["log_loss"] for r in rows if r["display"] == name]
        ax.scatter(values, [i] * len(values), color=colour[name], s=28, zorder=3)
        ax.plot([np.mean(values)] * 2, [i - 0.3, i + 0.3], color=colour[name], lw=2)
    ax.set_yticks(np.arange(len(variants)), variants, fontsize=8)
    ax.set_xlabel("held-out log-loss on the test pairs (lower is better; dots = seeds, "
                  "bar = mean)")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig, "held-out log-loss by fit")


def _loo_section(group: dict[str, Any]) -> str:
    loo = group["loo"]
    parts = ["<h3>PSIS-LOO</h3>"]
    if loo["table"]:
        rows = []
        for e in loo["table"]:
            k = e["pareto_k"] or {}
            bad = k.get("n_bad", 0) + k.get("n_very_bad", 0)
            rows.append([_e(e["name"]), str(e["rank"]), _f(e["elpd"], 1), _f(e["se"], 1),
                         _f(e["p_loo"], 1), _f(e["elpd_diff"], 1), _f(e["dse"], 1),
                         _f(e["weight"], 3), f"{k.get('n_good', 0):,}",
                         f'<span class="{"bad" if bad else ""}">{bad:,}</span>',
                         f"{k.get('n_very_bad', 0):,}", _f(k.get("k_max"), 2),
                         _e(e["diag_diff"] or "")])
        good = loo["table"][0]["pareto_k"]["good_k"] if loo["table"][0]["pareto_k"] else 0.7
        parts.append(_table(["fit", "rank", "elpd_loo", "se", "p_loo", "elpd_diff", "dse",
                             "weight", f"k <= {good:.2f}", f"k > {good:.2f}", "k > 1",
                             "k max", "diag"], rows))
        parts.append(f"<p class='note'>{_e(loo['method'])}. elpd_diff and dse are relative "
                     "to the best fit and paired over observations. Pareto k above the "
                     "threshold marks observations where PSIS-LOO is unreliable.</p>")
        parts.append(elpd_plot(group))
    else:
        parts.append("<p>No fit of this data set has a pointwise log-likelihood.</p>")
    for rec in loo["not_compared"]:
        parts.append(f"<p class='note'>not compared: {_e(rec['name'])}: "
                     f"{_e(rec['reason'])}</p>")
    if loo["warnings"]:
        items = "".join(f"<li>{_e(w)}</li>" for w in loo["warnings"])
        parts.append(f"<details><summary class='note'>{len(loo['warnings'])} ArviZ "
                     f"warning(s)</summary><ul class='note'>{items}</ul></details>")
    return "".join(parts)


def _heldout_section(group: dict[str, Any]) -> str:
    rows = [r for r in group["fits"] if r["log_loss"] is not None]
    if not rows:
        errors = {r["heldout_error"] for r in group["fits"] if r["heldout_error"]}
        why = "; ".join(errors) or "the data folder has no reference/ground_truth.csv"
        return f"<h3>Held-out metrics</h3><p class='note'>None: {_e(why)}</p>"
    rows.sort(key=lambda r: r["log_loss"])
    body = [[_e(r["name"]), _e(r["display"]), str(r["seed"]), _f(r["log_loss"], 4),
             _f(r["auc"], 4), _f(r["brier"], 4), f"{r['heldout_n']:,}"] for r in rows]
    return ("<h3>Held-out metrics</h3>"
            + _table(["fit", "variant", "seed", "log-loss", "AUC", "Brier", "pairs"], body, 2)
            + "<p class='note'>pipeline.predict on the test pairs (new items, no revealed "
              "labels) against reference/ground_truth.csv.</p>" + heldout_plot(group))


def _convergence_section(group: dict[str, Any]) -> str:
    body = []
    for r in group["fits"]:
        verdict = ('<span class="ok v">converged</span>' if r["passed"]
                   else f'<span class="bad v">{_e(r["verdict"])}</span>')
        body.append([_e(r["name"]), _e(r["sampler"]), _f(r["rhat_max"], 4),
                     _f(r["ess_bulk_min"], 0), _f(r["ess_tail_min"], 0),
                     str(r["divergences"]), str(r["tree_depth_hits"]),
                     _f(r["wall_seconds"], 0), verdict])
    return ("<h3>Convergence</h3>"
            + _table(["fit", "chains x (warmup + draws)", "R-hat max", "bulk-ESS min",
                      "tail-ESS min", "divergences", "tree-depth hits", "wall s", "verdict"],
                     body, 2)
            + "<p class='note'>Verdict thresholds: R-hat <= 1.01, bulk- and tail-ESS >= 400, "
              "no divergences (as bayesirt fit --strict).</p>")


def _spread_section(group: dict[str, Any]) -> str:
    from bayesirt.batch.compare import SPREAD_METRICS

    if not group["seed_spread"]:
        return ("<h3>Seed-to-seed spread</h3><p class='note'>No two fits differ only in the "
                "seed.</p>")
    keys = [(k, label) for k, label in SPREAD_METRICS
            if any(k in s["metrics"] for s in group["seed_spread"])]
    body = []
    for s in group["seed_spread"]:
        cells = [_e(s["label"]), _e(", ".join(map(str, s["seeds"]))),
                 f"{s['n_converged']}/{len(s['seeds'])}"]
        for key, _ in keys:
            m = s["metrics"].get(key)
            digits = 4 if key in ("log_loss", "auc", "brier", "rhat_max") else 1
            cells.append("-" if m is None else
                         f"{_f(m['mean'], digits)} &plusmn; {_f(m['sd'], digits)} "
                         f"<span class='note'>(range {_f(m['range'], digits)})</span>")
        body.append(cells)
    return ("<h3>Seed-to-seed spread</h3>"
            + _table(["variant", "seeds", "converged", *[label for _, label in keys]], body, 2)
            + "<p class='note'>mean &plusmn; sd over fits equal but for the seed: a difference "
              "between variants smaller than this spread is Monte Carlo noise.</p>")


def render(result: dict[str, Any]) -> str:
    """Render the page's HTML.

    Parameters
    ----------
    result : dict
        From :func:`bayesirt.batch.compare.compare_batch`.

    Returns
    -------
    str
        A complete HTML document with every image inline.
    """
    parts = [f"<h1>Batch comparison</h1><p>{_e(result['batch_dir'])}: {result['n_fits']} "
             f"fits, {result['n_ok']} finished, "
             f"<span class='{'bad' if result['n_failed'] else ''}'>{result['n_failed']} "
             f"failed</span>; {len(result['groups'])} data set(s). Made "
             f"{_e(result['created_at'])}.</p>"]
    if len(result["groups"]) > 1:
        parts.append("<p class='note'>Fits on different data are listed apart and never "
                     "compared by LOO (their elpd are sums over different observations).</p>")
    for i, group in enumerate(result["groups"], start=1):
        parts.append(f"<section id='data-{i}'><h2>Data set {i}: {_e(group['data'])}</h2>"
                     f"<p class='note'>fingerprint {_e(group['data_fingerprint'][:16])}, "
                     f"{len(group['fits'])} finished fit(s)</p>")
        parts += [_loo_section(group), _heldout_section(group), _convergence_section(group),
                  _spread_section(group), "</section>"]
    if result["failed"]:
        body = [[_e(r["name"]), _e(r["label"]), f"<span class='bad'>{_e(r['error'])}</span>"]
                for r in result["failed"]]
        parts.append("<section id='failed'><h2>Failed fits</h2>"
                     + _table(["fit", "variant", "error"], body, 3)
                     + "<p class='note'>Run the same bayesirt batch command again to retry "
                       "them (finished fits are skipped).</p></section>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>bayesirt batch comparison</title>"
            f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>"
            + "".join(parts) + "</body></html>")


def write_page(result: dict[str, Any], path: Any) -> Any:
    """Write :func:`render`'s page atomically; return its path."""
    from bayesirt.posteriors.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(render(result), encoding="utf-8")
    return path
