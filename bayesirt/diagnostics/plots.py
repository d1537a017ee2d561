"""Matplotlib (Agg) figures for the report, returned as base64 PNGs with their pixel size.

Sizing rule: figures are at most :data:`MAX_WIDTH_IN` inches wide and saved at :data:`DPI`
= 96, the CSS reference resolution, with constrained layout and no bbox cropping. The
HTML shows each image at its natural size inside the 1,068 px column, so a font of N points
in matplotlib is N CSS points in the browser (nothing is shrunk), and the saved image is
exactly the figure size (no blank bands from titles placed outside the axes).
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, NamedTuple

import matplotlib

matplotlib.use("Agg")  # the report is written headless; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

if TYPE_CHECKING:
    from bayesirt.diagnostics.compute import ReportData, Trace

DPI = 96
#: Widest figure (inches): 1,056 px at DPI, inside the report's 1,068 px text column.
MAX_WIDTH_IN = 11.0
#: Smallest font used (points); tick and row labels.
SMALL = 8.5
LABEL = 9.0
TITLE = 10.0
#: Height (inches) of one model/benchmark row in forest and interval plots.
ROW_IN = 0.2
_LABEL_CHARS = 40


class Png(NamedTuple):
    """A rendered figure: base64 PNG text and its size in pixels."""

    b64: str
    width: int
    height: int


def _figure(width: float, height: float) -> Figure:
    return plt.figure(figsize=(min(width, MAX_WIDTH_IN), height), dpi=DPI, layout="constrained")


def to_png(fig: Figure) -> Png:
    """Render and close a figure; return its PNG as base64 text with its pixel size."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    width, height = (int(round(v)) for v in fig.get_size_inches() * DPI)
    plt.close(fig)
    return Png(base64.b64encode(buf.getvalue()).decode("ascii"), width, height)


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "\u2026"


def trace_rank(trace: Trace) -> Png:
    """Trace and per-chain rank histogram of each parameter, two parameters per row.

    Parameters
    ----------
    trace : Trace
        Names, ``(chains, draws)`` arrays and one caption per parameter.
    """
    n = len(trace.names)
    rows = (n + 1) // 2
    fig = _figure(MAX_WIDTH_IN, 1.3 * rows + 0.5)
    axes = fig.subplots(rows, 4, squeeze=False, gridspec_kw={"width_ratios": [3, 2, 3, 2]})
    for j in range(n, 2 * rows):
        axes[j // 2, 2 * (j % 2)].axis("off")
        axes[j // 2, 2 * (j % 2) + 1].axis("off")
    for j, (name, x, note) in enumerate(zip(trace.names, trace.draws, trace.notes,
                                             strict=True)):
        ax_t, ax_r = axes[j // 2, 2 * (j % 2)], axes[j // 2, 2 * (j % 2) + 1]
        n_chain, n_draw = x.shape
        for c in range(n_chain):
            ax_t.plot(x[c], lw=0.5, alpha=0.8)
        # One caption across trace and rank panel: the rank panel alone is too narrow.
        ax_t.set_title(f"{name}    {note}", fontsize=SMALL, loc="left")
        ax_t.tick_params(labelsize=SMALL)
        ranks = np.argsort(np.argsort(x.ravel())).reshape(x.shape)
        bins = np.linspace(0, x.size, 21)
        for c in range(n_chain):
            hist, _ = np.histogram(ranks[c], bins=bins)
            ax_r.step(bins[:-1], hist, where="post", lw=0.8)
        ax_r.axhline(n_draw / 20, color="k", ls="--", lw=0.6)
        ax_r.set_yticks([])
        ax_r.set_xticks([])
    fig.suptitle(f"{trace.title}: trace (one colour per chain), rank histogram per chain "
                 "(flat = mixed); captions: R-hat, bulk/tail ESS", fontsize=TITLE)
    return to_png(fig)


def interval_plot(labels: list[str], obs: np.ndarray, rep: np.ndarray, title: str,
                  xlabel: str = "accuracy") -> Png:
    """Observed value (dot) against the replicated 90% interval (bar), one row per group."""
    lo, med, hi = np.nanquantile(rep, [0.05, 0.5, 0.95], axis=0)
    order = np.argsort(np.nan_to_num(obs, nan=-1))
    n = len(labels)
    fig = _figure(7.5, ROW_IN * n + 1.3)
    ax = fig.subplots()
    y = np.arange(n)
    inside = (obs >= lo) & (obs <= hi)
    ax.hlines(y, lo[order], hi[order], color="tab:blue", lw=2, alpha=0.6,
              label="replicated 90% interval")
    ax.plot(med[order], y, "|", color="tab:blue")
    ax.scatter(obs[order], y, c=np.where(inside[order], "k", "tab:red"), s=12, zorder=3,
               label="observed (red: outside)")
    ax.set_yticks(y, [_short(labels[i]) for i in order], fontsize=SMALL)
    ax.set_ylim(-0.7, n - 0.3)
    ax.tick_params(axis="x", labelsize=SMALL)
    ax.set_xlabel(xlabel, fontsize=LABEL)
    ax.set_title(title, fontsize=TITLE)
    ax.legend(fontsize=SMALL, loc="lower right")
    return to_png(fig)


def item_hist(bench_names: list[str], bins: np.ndarray, obs: np.ndarray,
              rep: np.ndarray) -> Png:
    """Per-benchmark histogram of item accuracy: observed bars, replicated 90% band."""
    n = len(bench_names)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig = _figure(3.6 * cols, 2.5 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    centres = (bins[:-1] + bins[1:]) / 2
    width = bins[1] - bins[0]
    for k, name in enumerate(bench_names):
        ax = axes[k // cols, k % cols]
        ax.bar(centres, obs[k], width=width * 0.9, color="0.7", label="observed")
        lo, hi = np.quantile(rep[:, k], [0.05, 0.95], axis=0)
        ax.fill_between(centres, lo, hi, step="mid", alpha=0.35, color="tab:blue",
                        label="replicated 90%")
        ax.set_title(name, fontsize=LABEL)
        ax.tick_params(labelsize=SMALL)
    for k in range(n, rows * cols):
        axes[k // cols, k % cols].axis("off")
    axes[0, 0].legend(fontsize=SMALL)
    fig.supxlabel("item accuracy (share of models correct)", fontsize=LABEL)
    return to_png(fig)


def forest(bench_names: list[str], model_names: list[str], q: np.ndarray,
           observed: np.ndarray, gap: int | None = None, per_figure: int = 5) -> list[Png]:
    """Ability forest plot: one row per model, one panel per benchmark, labels once.

    Parameters
    ----------
    bench_names : list of str
    model_names : list of str
        Row labels, top to bottom.
    q : ndarray, shape (3, n_models, n_benchmarks)
        5%, 50% and 95% posterior quantiles.
    observed : ndarray of bool, shape (n_models, n_benchmarks)
        Cells with data; the others (drawn from the prior) are grey.
    gap : int, optional
        Rows before this one and from it on are not adjacent in the ranking (models left
        out between them): a dashed line marks the cut.
    per_figure : int, default 5
        Benchmark panels side by side; more benchmarks continue in further figures.
    """
    n = len(model_names)
    y = np.arange(n)
    out = []
    for start in range(0, len(bench_names), per_figure):
        ks = list(range(start, min(start + per_figure, len(bench_names))))
        fig = _figure(MAX_WIDTH_IN, ROW_IN * n + 1.2)
        axes = fig.subplots(1, len(ks), sharey=True, squeeze=False)[0]
        for ax, k in zip(axes, ks, strict=True):
            lo, med, hi = q[0, :, k], q[1, :, k], q[2, :, k]
            seen = observed[:, k]
            ax.hlines(y[~seen], lo[~seen], hi[~seen], color="0.75", lw=1.5)
            ax.plot(med[~seen], y[~seen], "o", ms=3.5, mfc="white", mec="0.6")
            ax.hlines(y[seen], lo[seen], hi[seen], color="tab:blue", lw=1.8)
            ax.plot(med[seen], y[seen], "o", ms=3.5, color="k")
            ax.set_title(bench_names[k], fontsize=TITLE)
            ax.tick_params(axis="x", labelsize=SMALL)
            ax.grid(axis="y", color="0.92", lw=0.8)
            if gap is not None:
                ax.axhline(gap - 0.5, color="0.3", ls="--", lw=1.0)
            ax.set_axisbelow(True)
        axes[0].set_yticks(y, [_short(m) for m in model_names], fontsize=SMALL)
        axes[0].set_ylim(n - 0.4, -0.6)  # best model on top
        fig.supxlabel("ability: posterior median (dot) and 90% interval (bar); grey: no data "
                      "on that benchmark", fontsize=LABEL)
        out.append(to_png(fig))
    return out


def item_params(bench_names: list[str], item_bench: np.ndarray, difficulty: np.ndarray,
                log_disc: np.ndarray | None) -> Png:
    """Box plots of posterior-mean difficulty and discrimination by benchmark."""
    n_panels = 1 if log_disc is None else 2
    fig = _figure(5.4 * n_panels, 3.4)
    axes = fig.subplots(1, n_panels, squeeze=False)
    groups = [np.flatnonzero(item_bench == k) for k in range(len(bench_names))]
    axes[0, 0].boxplot([difficulty[g] for g in groups], tick_labels=bench_names,
                       showfliers=False)
    axes[0, 0].set_title("item difficulty (posterior mean)", fontsize=LABEL)
    if log_disc is not None:
        axes[0, 1].boxplot([np.exp(log_disc[g]) for g in groups], tick_labels=bench_names,
                           showfliers=False)
        axes[0, 1].set_title("item discrimination exp(log_discrimination)", fontsize=LABEL)
    for ax in axes[0]:
        ax.tick_params(labelsize=SMALL)
        if len(bench_names) > 5:
            ax.tick_params(axis="x", labelrotation=30)
    return to_png(fig)


def reliability_plot(rel: dict) -> Png:
    """Reliability diagram (fraction positive vs mean predicted per bin) with counts."""
    fig = _figure(4.8, 5.2)
    ax, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ok = rel["count"] > 0
    ax.plot([0, 1], [0, 1], "k--", lw=0.7)
    ax.plot(rel["mean_p"][ok], rel["frac_pos"][ok], "o-", color="tab:blue")
    ax.set_ylabel("observed frequency", fontsize=LABEL)
    ax.set_title(f"reliability (ECE {rel['ece']:.3f})", fontsize=TITLE)
    centres = (rel["edges"][:-1] + rel["edges"][1:]) / 2
    ax2.bar(centres, rel["count"], width=0.09, color="0.6")
    ax2.set_xlabel("predicted probability", fontsize=LABEL)
    ax2.set_ylabel("pairs", fontsize=LABEL)
    for a in (ax, ax2):
        a.tick_params(labelsize=SMALL)
    return to_png(fig)


def report_figures(data: ReportData) -> dict[str, list[Png]]:
    """Draw every figure of the report from its data.

    Parameters
    ----------
    data : ReportData
        From :func:`bayesirt.diagnostics.compute.compute`.

    Returns
    -------
    dict of str to list of Png
        Keys ``hyper_trace``, ``worst_trace``, ``forest``, ``item_params``, ``ppc_benchmark``,
        ``ppc_model``, ``item_hist``, ``reliability``; a key is absent when its section is.
    """
    figs: dict[str, list[Png]] = {}
    if data.hyper_trace is not None:
        figs["hyper_trace"] = [trace_rank(data.hyper_trace)]
    if data.worst_trace is not None:
        figs["worst_trace"] = [trace_rank(data.worst_trace)]
    if data.forest is not None:
        f = data.forest
        figs["forest"] = forest(f["bench_names"], f["model_names"], f["q"], f["observed"],
                                f["gap"])
    if data.item_params is not None:
        ip = data.item_params
        figs["item_params"] = [item_params(data.bench_names, ip["item_benchmark"],
                                           ip["difficulty"], ip["log_discrimination"])]
    if data.ppc is not None:
        ppc = data.ppc
        figs["ppc_benchmark"] = [interval_plot(data.bench_names, ppc.benchmark_obs,
                                               ppc.benchmark_rep, "accuracy per benchmark")]
        figs["ppc_model"] = [interval_plot(data.model_names, ppc.model_obs, ppc.model_rep,
                                           "accuracy per model")]
        figs["item_hist"] = [item_hist(data.bench_names, ppc.bins, ppc.item_hist_obs,
                                       ppc.item_hist_rep)]
    if data.heldout is not None:
        figs["reliability"] = [reliability_plot(data.heldout["reliability"])]
    return figs
