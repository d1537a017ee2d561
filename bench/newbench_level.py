"""Why a held-out benchmark's budget-0 prediction loses to the smoothed mean: its level.

For one held-out benchmark and the fit without it (bench/lobo.py's cache,
``WORK/<set>/fits/without-<b>.nc``): every model's budget-0 prediction on the benchmark's
responses (``predict_pairs``, the new-benchmark path), beside its true accuracy there and its
accuracy on the benchmarks it took in training (what the smoothed mean predicts at budget 0);
then the population of benchmarks' prior predictive accuracy for a model of general
ability ``eta`` (Monte Carlo over the posterior's hyperparameters), beside the realised
accuracy of the training benchmarks.

Run:
  .venv/bin/python bench/newbench_level.py --set small --benchmark bfcl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.special import expit
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SETS = {"small": ROOT.parent / "shared/data/real-multibench-small",
        "dev": ROOT.parent / "shared/data/real-multibench"}
POP = ("difficulty_loc", "difficulty_scale", "log_sigma_difficulty_loc",
       "log_sigma_difficulty_scale", "log_discrimination_loc", "log_discrimination_scale",
       "log_sigma_log_discrimination_loc", "log_sigma_log_discrimination_scale",
       "logit_loading_loc", "logit_loading_scale")


def population_accuracy(draws, eta: float, rng: np.random.Generator, n_bench: int = 2000,
                        n_items: int = 200) -> float:
    """Prior predictive mean accuracy of a model of general ability ``eta`` on a new benchmark.

    Each of ``n_bench`` simulated benchmarks takes one posterior draw's hyperparameters, its
    level parameters from them, ``n_items`` items and the model's ability
    ``rho * eta + sqrt(1 - rho^2) * eps`` (the engine's new-benchmark prior, untilted).
    """
    pop = {k: np.asarray(getattr(draws, "benchmark_pop_" + k)) for k in POP}
    s = rng.integers(0, pop["difficulty_loc"].size, n_bench)
    z = rng.standard_normal((5, n_bench))
    mu_b = pop["difficulty_loc"][s] + pop["difficulty_scale"][s] * z[0]
    sd_b = np.exp(pop["log_sigma_difficulty_loc"][s] + pop["log_sigma_difficulty_scale"][s] * z[1])
    mu_a = pop["log_discrimination_loc"][s] + pop["log_discrimination_scale"][s] * z[2]
    sd_a = np.exp(pop["log_sigma_log_discrimination_loc"][s]
                  + pop["log_sigma_log_discrimination_scale"][s] * z[3])
    rho = expit(pop["logit_loading_loc"][s] + pop["logit_loading_scale"][s] * z[4])
    theta = rho[:, None] * eta + np.sqrt(1 - rho**2)[:, None] * rng.standard_normal((n_bench, 1))
    b = mu_b[:, None] + sd_b[:, None] * rng.standard_normal((n_bench, n_items))
    a = np.exp(mu_a[:, None] + sd_a[:, None] * rng.standard_normal((n_bench, n_items)))
    return float(np.mean(expit(a * (theta - b))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=sorted(SETS), default="small")
    ap.add_argument("--benchmark", default="bfcl")
    ap.add_argument("--work", default="/tmp/bayesirt-lobo")
    args = ap.parse_args()
    from bayesirt import data as bdata
    from bayesirt import pipeline
    from bayesirt.predictive import inputs, predict_pairs

    data = bdata.load(SETS[args.set] / "train")
    fits = Path(args.work) / args.set / "fits"
    draws = pipeline.load_draws(fits / f"without-{args.benchmark}.nc")
    held = list(data.benchmark_ids).index(args.benchmark)
    obs_bench = np.asarray(data.item_benchmark)[data.item_idx]
    on = obs_bench == held
    models = np.asarray(data.model_ids, dtype=object)[data.model_idx[on]]
    items = np.asarray(data.item_ids, dtype=object)[data.item_idx[on]]
    y = data.response[on].astype(float)
    p0 = predict_pairs(draws, models, items, new_items=inputs.new_items(draws, data), labels=None,
                       item_draws=32)
    eta = dict(zip(draws.model_ids, draws.general_ability.mean(0), strict=True))
    print(f"# The budget-0 level of a held-out benchmark: {args.benchmark} on the {args.set} set "
          "(bench/newbench_level.py)\n")
    print(f"{args.benchmark}'s responses: {y.size}, accuracy {y.mean():.3f}; bayesirt's mean "
          f"budget-0 prediction {p0.mean():.3f}, Brier {np.mean((p0 - y) ** 2):.4f} (a constant "
          f"{p0.mean():.3f}: {np.mean((p0.mean() - y) ** 2):.4f}).\n")
    print("| model | eta (posterior mean) | bayesirt p at budget 0 | accuracy on "
          f"{args.benchmark} | training accuracy (the smoothed mean's budget 0) | training "
          "benchmarks |\n|---|---|---|---|---|---|")
    train_acc, p_model, y_model = [], [], []
    for m in np.unique(models):
        mi = list(data.model_ids).index(m)
        mine = (data.model_idx == mi) & ~on
        took = np.unique(obs_bench[mine]).size
        train_acc.append(data.response[mine].mean())
        q = models == m
        p_model.append(p0[q].mean())
        y_model.append(y[q].mean())
        print(f"| {m} | {eta.get(m, float('nan')):.2f} | {p0[q].mean():.3f} | {y[q].mean():.3f} | "
              f"{train_acc[-1]:.3f} | {took} |")
    print(f"| mean | | {p0.mean():.3f} | {y.mean():.3f} | {np.mean(train_acc):.3f} | |\n")
    print(f"Kendall's tau with the models' accuracy on {args.benchmark}: bayesirt's budget-0 "
          f"prediction {kendalltau(p_model, y_model)[0]:.3f}, training accuracy "
          f"{kendalltau(train_acc, y_model)[0]:.3f}.\n")
    rng = np.random.default_rng(0)
    print("The population of benchmarks (the fit's hyperparameters): prior predictive accuracy "
          "on a NEW benchmark for a model of general ability eta, against the realised "
          "training benchmarks' accuracy (all their responses).\n")
    print("| eta | -1 | 0 | +1 |\n|---|---|---|---|")
    print("| prior predictive accuracy | "
          + " | ".join(f"{population_accuracy(draws, e, rng):.3f}" for e in (-1.0, 0.0, 1.0))
          + " |\n")
    print("| training benchmark | accuracy |\n|---|---|")
    for k, b in enumerate(data.benchmark_ids):
        if k != held:
            print(f"| {b} | {data.response[obs_bench == k].mean():.3f} |")


if __name__ == "__main__":
    main()
