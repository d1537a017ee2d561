"""Is anything left in recalibrating the new-item predictions? Upper bounds from the test set.

``predict_pairs`` as ``bayesirt predict`` calls it (neighbours 20, item_draws 32), at
k = 0, 3, 10 revealed labels, scored on the unrevealed test pairs as in docs/peers.md; then
three checks of what a post-hoc correction could still win, each an UPPER bound because it is
fitted on the test labels (a diagnostic, never a feature):

1. per benchmark, a logit temperature and shift (Platt) fitted on the test pairs themselves;
2. per model and per (model, benchmark), the same, cross-fitted: fitted on a random half of
   the test items, scored on the other half (so it shows a real per-model slope, if any);
3. reliability of the lowest predictions on a benchmark (a missing guessing floor would show
   as observed rates above the predicted ones).

Run:
  .venv/bin/python bench/prediction_levers.py /tmp/dev/short.nc ../shared/data/real-multibench
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, logit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
EDGES = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3)


def nll(y: np.ndarray, p: np.ndarray) -> float:
    """Summed Bernoulli negative log-likelihood."""
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.sum(y * np.log(p) + (1 - y) * np.log1p(-p)))


def platt(y: np.ndarray, z: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """(temperature, shift) maximising the likelihood of ``expit(t z + c)``, ridge to (1, 0)."""
    def loss(t: np.ndarray) -> float:
        return nll(y, expit(t[0] * z + t[1])) + ridge * ((t[0] - 1) ** 2 + t[1] ** 2)
    return minimize(loss, np.array([1.0, 0.0]), method="Nelder-Mead").x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("posterior")
    ap.add_argument("data_dir")
    ap.add_argument("--floor-benchmark", default="mmlu_pro")
    args = ap.parse_args()
    from predict_accuracy import read_csv

    from bayesirt import data as bdata
    from bayesirt import pipeline
    from bayesirt.predictive import inputs, predict_pairs

    root = Path(args.data_dir)
    draws = pipeline.load_draws(args.posterior)
    parsed = bdata.load(root / "train", root / "test")
    models, items = inputs.test_pairs(parsed)
    y = np.asarray(read_csv(root / "reference/ground_truth.csv")["label"], dtype=np.float64)
    key = {(m, i): n for n, (m, i) in enumerate(zip(models, items, strict=True))}
    new_items = inputs.new_items(draws, parsed)
    bench = np.asarray([new_items[i].benchmark_id for i in items])
    fold_of = {i: f for i, f in zip(np.unique(items), np.random.default_rng(0).integers(
        0, 2, np.unique(items).size), strict=True)}
    fold = np.asarray([fold_of[i] for i in items])
    print(f"# Recalibration levers on {root.name} (bench/prediction_levers.py)\n")
    print(f"Posterior `{args.posterior}` ({draws.n_draws} draws); `predict_pairs` with "
          "neighbours 20, item_draws 32. Every correction below is fitted on the TEST labels: "
          "an upper bound of what it could win, not a feature.\n")
    rows, floor_rows = [], []
    for k in (0, 3, 10):
        rev = read_csv(root / f"reveal/k{k}_revealed.csv")
        idx = np.asarray([key[(m, i)] for m, i in zip(rev.get("model_id", []),
                                                      rev.get("item_id", []), strict=True)],
                         dtype=np.int64)
        labels = (models[idx], items[idx], y[idx].astype(np.int64)) if idx.size else None
        p = predict_pairs(draws, models, items, new_items=new_items, labels=labels,
                          item_draws=32, neighbours=inputs.neighbours(parsed), n_neighbours=20)
        scored = np.ones(models.size, bool)
        scored[idx] = False
        z = logit(np.clip(p, 1e-7, 1 - 1e-7))
        n = scored.sum()
        base = nll(y[scored], p[scored]) / n
        oracle = 0.0
        for b in np.unique(bench):
            s = scored & (bench == b)
            t = platt(y[s], z[s])
            oracle += nll(y[s], expit(t[0] * z[s] + t[1]))
        cross = {}
        for name, group in (("model", models.astype(str)),
                            ("model x benchmark", np.char.add(models.astype(str), bench))):
            total = 0.0
            for g in np.unique(group[scored]):
                s = scored & (group == g)
                for q in (0, 1):
                    fit_on, score_on = s & (fold != q), s & (fold == q)
                    if not score_on.any():
                        continue
                    t = platt(y[fit_on], z[fit_on], ridge=5.0) if fit_on.any() else (1.0, 0.0)
                    total += nll(y[score_on], expit(t[0] * z[score_on] + t[1]))
            cross[name] = total / n
        rows.append(f"| {k} | {base:.4f} | {oracle / n:.4f} | {cross['model']:.4f} | "
                    f"{cross['model x benchmark']:.4f} |")
        s = scored & (bench == args.floor_benchmark)
        for lo, hi in zip(EDGES[:-1], EDGES[1:], strict=True):
            q = s & (p >= lo) & (p < hi)
            if q.any():
                floor_rows.append(f"| {k} | [{lo:.2f}, {hi:.2f}) | {q.sum()} | "
                                  f"{p[q].mean():.3f} | {y[q].mean():.3f} |")
    print("| k | log-loss | + per-benchmark Platt (fitted on the scored pairs) | + per-model "
          "Platt (cross-fitted) | + per-(model, benchmark) Platt (cross-fitted) |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nThe lowest predictions on {args.floor_benchmark} (a guessing floor the model "
          "lacks would show as observed > predicted):\n")
    print("| k | predicted in | pairs | mean predicted | observed |\n|---|---|---|---|---|")
    print("\n".join(floor_rows))


if __name__ == "__main__":
    main()
