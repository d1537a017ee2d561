"""Convergence of hier2pl on three seeds, and a PSIS-LOO comparison of the models, on the
small real data set (bayesirt/datasets/real_multibench_small).

For each seed the default fit (4 chains x 1500 warmup x 1000 draws) must reach, over EVERY
parameter, rank-normalised R-hat <= 1.01, bulk- and tail-ESS >= 400 and no divergences.
The comparison fits rasch, 2pl, hier2pl and hier2pl's options with pointwise
log-likelihood, and reports elpd_loo (se), the Pareto-k summary and the held-out log-loss on
the new test items (k = 0, no revealed labels).

Usage: python bench/small_models.py [--seeds 0,1,2] [--skip-loo] [--skip-seeds]
Writes bench/results/small_models.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

VARIANTS = {
    "rasch": {"model": "rasch"},
    "2pl": {"model": "2pl"},
    "hier2pl": {"model": "hier2pl"},
    "hier2pl + guess": {"model": "hier2pl", "guess": True},
    "hier2pl + embeddings (8 PCs)": {"model": "hier2pl", "embedding_components": 8},
}


def heldout_logloss(result, root: Path) -> tuple[float, float]:
    import numpy as np
    import pandas as pd

    from bayesirt import pipeline, posteriors

    with tempfile.TemporaryDirectory() as tmp:
        path = posteriors.save(result, Path(tmp) / "p.nc")
        pred = pd.DataFrame(pipeline.predict(path, root / "test"))
    truth = pd.read_csv(root / "reference" / "ground_truth.csv")
    merged = truth.merge(pred, on=["model_id", "item_id"])
    p = np.clip(merged.predicted_probability.to_numpy(), 1e-7, 1 - 1e-7)
    y = merged.label.to_numpy()
    ll = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    from scipy.stats import rankdata

    r = rankdata(p)
    n1 = y.sum()
    auc = float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(y) - n1)))
    return ll, auc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--skip-loo", action="store_true")
    ap.add_argument("--skip-seeds", action="store_true")
    ap.add_argument("--out", default="bench/results/small_models.md")
    args = ap.parse_args()

    import jax
    import numpy as np
    from arviz_stats.base import array_stats

    from bayesirt import data as _data
    from bayesirt.inference import FitConfig, convergence_headline, fit

    root = _data.bundled_dataset()
    irt = _data.load(root)
    lines = [
        "# hier2pl convergence and model comparison on real-multibench-small",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), python "
        f"{platform.python_version()}, jax {jax.__version__}; shared with other jobs while "
        "measured, so wall times are upper bounds. Script: bench/small_models.py.",
        "",
    ]
    if not args.skip_seeds:
        lines += [
            "## Convergence, defaults (4 chains x 1500 warmup + 1000 draws), every parameter",
            "",
            "| seed | R-hat max | bulk-ESS min | tail-ESS min | divergences | tree-depth hits "
            "| steps/draw | wall s | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for seed in [int(s) for s in args.seeds.split(",")]:
            t0 = time.perf_counter()
            res = fit(jax.random.key(seed), irt, FitConfig(seed=seed, progress=False))
            wall = time.perf_counter() - t0
            h = convergence_headline(res.posterior, res.sample_stats, res.max_tree_depth,
                                 res.dims, res.coords)
            ok = (h["rhat_max"] <= 1.01 and h["ess_bulk_min"] >= 400
                  and h["ess_tail_min"] >= 400 and h["divergences"] == 0)
            lines.append(
                f"| {seed} | {h['rhat_max']:.4f} ({h['rhat_max_name']}) | "
                f"{h['ess_bulk_min']:.0f} ({h['ess_bulk_min_name']}) | "
                f"{h['ess_tail_min']:.0f} ({h['ess_tail_min_name']}) | {h['divergences']} | "
                f"{h['tree_depth_hits']} | {res.sample_stats['n_steps'].mean():.1f} | "
                f"{wall:.0f} | {'converged' if ok else 'NOT converged'} |"
            )
            print(lines[-1], flush=True)
        lines.append("")
    if not args.skip_loo:
        lines += [
            "## PSIS-LOO and held-out log-loss (new test items, no labels)",
            "",
            "4 chains x 500 warmup + 500 draws each, seed 0.",
            "",
            "| model | elpd_loo | se | p_loo | Pareto k > 0.7 | held-out log-loss | "
            "held-out AUC | R-hat max |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, opts in VARIANTS.items():
            res = fit(jax.random.key(0), irt, FitConfig(warmup=500, draws=500, progress=False,
                                                        log_likelihood=True, **opts))
            ll = res.log_likelihood.astype(np.float64)
            elpd_i, pareto_k, p_i = array_stats.loo(ll, chain_axis=0, draw_axis=1)
            loo = {"elpd": float(np.sum(elpd_i)),
                   "se": float(np.sqrt(elpd_i.size * np.var(elpd_i))),
                   "p": float(np.sum(p_i)), "pareto_k": np.asarray(pareto_k)}
            h = convergence_headline(res.posterior, res.sample_stats, res.max_tree_depth,
                                 res.dims, res.coords)
            ho_ll, ho_auc = heldout_logloss(res, root)
            lines.append(
                f"| {name} | {loo['elpd']:.1f} | {loo['se']:.1f} | {loo['p']:.1f} | "
                f"{int((loo['pareto_k'] > 0.7).sum())} | {ho_ll:.4f} | {ho_auc:.4f} | "
                f"{h['rhat_max']:.3f} |"
            )
            print(lines[-1], flush=True)
        lines.append("")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
