"""Tables and learning-curve plot of a leave-one-benchmark-out run (records -> md, png)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bayesirt.submission.heldout import BASELINES, BUDGETS, alc

PREDICTORS = ("bayesirt", *BASELINES)


def summarise(records: list[dict]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(benchmark, scope, predictor) -> Brier and log-loss per budget (mean over seeds), ALC."""
    acc: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        acc[(r["benchmark"], r["scope"], r["predictor"])][r["budget"]].append(
            (r["brier"], r["log_loss"]))
    out = {}
    for key, by_budget in acc.items():
        brier = [float(np.mean([v[0] for v in by_budget[b]])) for b in BUDGETS]
        ll = [float(np.mean([v[1] for v in by_budget[b]])) for b in BUDGETS]
        n_seeds = len(by_budget[BUDGETS[0]])
        out[key] = {"brier": brier, "log_loss": ll, "alc": alc(brier), "n_seeds": n_seeds}
    return out


def table(records: list[dict], fits: dict[str, Any] | None = None) -> str:
    """Markdown: per held-out benchmark and scope, ALC of each predictor and bayesirt's curve."""
    s = summarise(records)
    lines = []
    for scope in sorted({k[1] for k in s}):
        benches = sorted({k[0] for k in s if k[1] == scope})
        lines += [f"### split per {scope}", "",
                  "| held out | pairs | bayesirt ALC | empirical mean ALC | smoothed mean ALC | "
                  "bayesirt Brier at " + " / ".join(str(b) for b in BUDGETS) + " | "
                  "smoothed Brier at 0 | bayesirt log-loss at 0 / 31 |",
                  "|---|---|---|---|---|---|---|---|"]
        alcs = defaultdict(list)
        for b in benches:
            row = {p: s.get((b, scope, p)) for p in PREDICTORS}
            n_pairs = next(r["n_pairs"] for r in records if r["benchmark"] == b)
            for p in PREDICTORS:
                alcs[p].append(row[p]["alc"])
            bz = row["bayesirt"]
            lines.append(
                f"| {b} | {n_pairs} | {bz['alc']:.4f} | {row['empirical_mean']['alc']:.4f} | "
                f"{row['smoothed_mean']['alc']:.4f} | "
                + " / ".join(f"{v:.3f}" for v in bz["brier"])
                + f" | {row['smoothed_mean']['brier'][0]:.3f} | "
                f"{bz['log_loss'][0]:.3f} / {bz['log_loss'][-1]:.3f} |")
        lines.append(f"| mean of {len(benches)} | | {np.mean(alcs['bayesirt']):.4f} | "
                     f"{np.mean(alcs['empirical_mean']):.4f} | "
                     f"{np.mean(alcs['smoothed_mean']):.4f} | | | |")
        lines.append("")
    if fits:
        lines += ["### fits (without the held-out benchmark)", "",
                  "| held out | reused | converged | R-hat max | bulk-ESS min | tail-ESS min | "
                  "divergences | steps/draw | wall s |", "|---|---|---|---|---|---|---|---|---|"]
        for b, f in fits.items():
            h = f.get("headline", {})
            lines.append(f"| {b} | {f.get('reused')} | {f.get('passed', '')} | "
                         f"{_num(h, 'rhat_max')} | {_num(h, 'ess_bulk_min')} | "
                         f"{_num(h, 'ess_tail_min')} | {_num(h, 'divergences')} | "
                         f"{_num(h, 'steps_per_draw')} | {_num(f, 'wall_s')} |")
        lines.append("")
    return "\n".join(lines)


def _num(d: dict, key: str) -> str:
    v = d.get(key)
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def plot_curves(records: list[dict], path: Path) -> Path:
    """Brier against budget per held-out benchmark (one panel each), every predictor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summarise(records)
    keys = sorted({(k[0], k[1]) for k in s})
    n = len(keys)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    x = np.arange(len(BUDGETS))
    for ax, (bench, scope) in zip(axes.ravel(), keys, strict=False):
        for p, style in zip(PREDICTORS, ("-o", "--s", ":^"), strict=True):
            v = s.get((bench, scope, p))
            if v is not None:
                ax.plot(x, v["brier"], style, label=f"{p} (ALC {v['alc']:.3f})")
        ax.set_xticks(x, [str(b) for b in BUDGETS])
        ax.set_xlabel("labels per pair")
        ax.set_ylabel("Brier (scored half)")
        ax.set_title(f"{bench} held out (split per {scope})", fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
