"""Matplotlib (Agg) figures for the report, returned as base64 PNG strings."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # the report is written headless; never open a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

DPI = 80


def to_png(fig: Figure) -> str:
    """Render and close a figure; return its PNG as base64 text."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def trace_rank(names: list[str], draws: list[np.ndarray], title: str) -> str:
    """Trace (left) and per-chain rank histograms (right), one row per parameter.

    Parameters
    ----------
    names : list of str
        Parameter names.
    draws : list of ndarray (chains, draws)
        Draws of each parameter.
    title : str
        Figure title.
    """
    n = len(names)
    fig, axes = plt.subplots(n, 2, figsize=(11, 1.5 * n + 0.6), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]})
    for row, (name, x) in enumerate(zip(names, draws, strict=True)):
        n_chain, n_draw = x.shape
        ax_t, ax_r = axes[row]
        for c in range(n_chain):
            ax_t.plot(x[c], lw=0.5, alpha=0.8)
        ax_t.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax_t.tick_params(labelsize=7)
        ranks = np.argsort(np.argsort(x.ravel())).reshape(x.shape)
        bins = np.linspace(0, x.size, 21)
        for c in range(n_chain):
            hist, _ = np.histogram(ranks[c], bins=bins)
            ax_r.step(bins[:-1], hist, where="post", lw=0.8)
        ax_r.axhline(n_draw / 20, color="k", ls="--", lw=0.6)
        ax_r.set_yticks([])
        ax_r.tick_params(labelsize=7)
    axes[0, 0].set_title("trace (one colour per chain)", fontsize=9)
    axes[0, 1].set_title("rank histogram per chain (flat = mixed)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return to_png(fig)


def interval_plot(labels: list[str], obs: np.ndarray, rep: np.ndarray, title: str,
                  xlabel: str = "accuracy") -> str:
    """Observed value (dot) against the replicated 90% interval (bar), one row per group."""
    lo, med, hi = np.nanquantile(rep, [0.05, 0.5, 0.95], axis=0)
    order = np.argsort(np.nan_to_num(obs, nan=-1))
    n = len(labels)
    fig, ax = plt.subplots(figsize=(7, 0.16 * n + 1.2))
    y = np.arange(n)
    inside = (obs >= lo) & (obs <= hi)
    ax.hlines(y, lo[order], hi[order], color="tab:blue", lw=2, alpha=0.6,
              label="replicated 90% interval")
    ax.plot(med[order], y, "|", color="tab:blue")
    ax.scatter(obs[order], y, c=np.where(inside[order], "k", "tab:red"), s=12, zorder=3,
               label="observed (red: outside)")
    ax.set_yticks(y)
    ax.set_yticklabels([labels[i] for i in order], fontsize=6 if n > 30 else 8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    return to_png(fig)


def item_hist(bench_names: list[str], bins: np.ndarray, obs: np.ndarray,
              rep: np.ndarray) -> str:
    """Per-benchmark histogram of item accuracy: observed bars, replicated 90% band."""
    n = len(bench_names)
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    centres = (bins[:-1] + bins[1:]) / 2
    width = bins[1] - bins[0]
    for k, name in enumerate(bench_names):
        ax = axes[k // cols, k % cols]
        ax.bar(centres, obs[k], width=width * 0.9, color="0.7", label="observed")
        lo, hi = np.quantile(rep[:, k], [0.05, 0.95], axis=0)
        ax.fill_between(centres, lo, hi, step="mid", alpha=0.35, color="tab:blue",
                        label="replicated 90%")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for k in range(n, rows * cols):
        axes[k // cols, k % cols].axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.supxlabel("item accuracy (share of models correct)", fontsize=9)
    return to_png(fig)


def forest(bench_names: list[str], model_labels: list[list[str]], q: list[np.ndarray]) -> str:
    """Ability forest plot: one panel per benchmark, median and 90% interval per model.

    Parameters
    ----------
    bench_names : list of str
    model_labels : list of list of str
        Models shown in each panel (those observed on that benchmark).
    q : list of ndarray (3, n_models_k)
        5%, 50%, 95% quantiles per panel.
    """
    n = len(bench_names)
    tallest = max([len(m) for m in model_labels] + [1])
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 0.15 * tallest + 1.5), squeeze=False)
    for k in range(n):
        ax = axes[0, k]
        lo, med, hi = q[k]
        order = np.argsort(med)
        y = np.arange(len(order))
        ax.hlines(y, lo[order], hi[order], color="tab:blue", lw=1.5)
        ax.plot(med[order], y, "o", ms=2.5, color="k")
        ax.set_yticks(y)
        ax.set_yticklabels([model_labels[k][i] for i in order], fontsize=5.5)
        ax.set_title(bench_names[k], fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_ylim(-1, tallest)
    fig.supxlabel("ability (logit), median and 90% interval", fontsize=9)
    return to_png(fig)


def item_params(bench_names: list[str], item_bench: np.ndarray, difficulty: np.ndarray,
                log_disc: np.ndarray | None) -> str:
    """Box plots of posterior-mean difficulty and discrimination by benchmark."""
    n_panels = 1 if log_disc is None else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(5.5 * n_panels, 3.2), squeeze=False)
    groups = [np.flatnonzero(item_bench == k) for k in range(len(bench_names))]
    axes[0, 0].boxplot([difficulty[g] for g in groups], tick_labels=bench_names,
                       showfliers=False)
    axes[0, 0].set_title("item difficulty (posterior mean)", fontsize=9)
    if log_disc is not None:
        axes[0, 1].boxplot([np.exp(log_disc[g]) for g in groups], tick_labels=bench_names,
                           showfliers=False)
        axes[0, 1].set_title("item discrimination exp(log_discrimination)", fontsize=9)
    for ax in axes[0]:
        ax.tick_params(labelsize=7)
    return to_png(fig)


def reliability_plot(rel: dict) -> str:
    """Reliability diagram (fraction positive vs mean predicted per bin) with counts."""
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(4.5, 5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    ok = rel["count"] > 0
    ax.plot([0, 1], [0, 1], "k--", lw=0.7)
    ax.plot(rel["mean_p"][ok], rel["frac_pos"][ok], "o-", color="tab:blue")
    ax.set_ylabel("observed frequency")
    ax.set_title(f"reliability (ECE {rel['ece']:.3f})", fontsize=10)
    centres = (rel["edges"][:-1] + rel["edges"][1:]) / 2
    ax2.bar(centres, rel["count"], width=0.09, color="0.6")
    ax2.set_xlabel("predicted probability")
    ax2.set_ylabel("pairs")
    return to_png(fig)
