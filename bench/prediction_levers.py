"""Is anything left in recalibrating the new-item predictions? Upper bounds from the test set.

``predict_pairs`` as ``bayesirt predict`` calls it (neighbours 20, item_draws 32), at
k = 0, 3, 10 revealed labels, scored on the unrevealed test pairs as in docs/peers.md; then
three checks of what a post-hoc correction could still win, each an UPPER bound because it is
fitted on the test labels (a diagnostic, never a feature):

1. per benchmark, a logit temperature and shift (Platt) fitted on the test pairs themselves;
2. per model and per (model, benchmark), the same, cross-fitted: fitted on a random half of
   the test items, scored on the other half (so it shows a real per-model slope, if any);
3. reliability of the lowest predictions on a benchmark (a missing guessing floor would show
   as observed rates above the predicted ones);
4. model similarity: a new item's revealed residuals ``y - p`` moved onto the other models by
   the correlation of the models' training residuals on the benchmark (``C``, shrunk by
   ``n / (n + 100)`` over ``n > 30`` common items), ``logit p + c_k * C r``, with ``c_k``
   fitted once on the training items (``C`` from one half of them, ``c_k`` on the other
   half with as many revealed models as ``k``: a feature could do this) and once on the
   scored test pairs (the upper bound).

Run:
  .venv/bin/python bench/prediction_levers.py /tmp/dev/short.nc ../shared/data/real-multibench
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize, minimize_scalar
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


def residual_correlation(resid: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Models' residual correlation over their common items, shrunk; zero diagonal.

    Parameters
    ----------
    resid, seen : ndarray, shape (n_models, n_items)
        Training residuals ``y - p`` (0 where unseen) and where a response exists.
    """
    o = seen.astype(np.float64)
    n = o @ o.T
    s1, s2 = resid @ o.T, (resid**2) @ o.T
    mean_x, mean_y = s1 / np.maximum(n, 1), s1.T / np.maximum(n, 1)
    var_x = s2 / np.maximum(n, 1) - mean_x**2
    var_y = s2.T / np.maximum(n, 1) - mean_y**2
    c = (resid @ resid.T / np.maximum(n, 1) - mean_x * mean_y) / np.sqrt(
        np.maximum(var_x * var_y, 1e-12))
    c = np.where(n > 30, c * n / (n + 100), 0.0)
    np.fill_diagonal(c, 0.0)
    return c


def fit_shift(p: np.ndarray, shift: np.ndarray, y: np.ndarray) -> float:
    """``c`` in [0, 20] maximising the likelihood of ``expit(logit p + c * shift)``."""
    z = logit(np.clip(p, 1e-6, 1 - 1e-6))
    return float(minimize_scalar(lambda c: nll(y, expit(z + c * shift)), bounds=(0.0, 20.0),
                                 method="bounded").x)


def similarity_check(draws, parsed, models, items, bench, y, p, scored, n_revealed, rng):
    """Log-loss of the scored pairs with the model-similarity term: (train-fitted, oracle)."""
    mid = {m: n for n, m in enumerate(draws.model_ids)}
    iid = {i: n for n, i in enumerate(draws.item_ids)}
    obs_m = np.asarray([mid[m] for m in np.asarray(parsed.model_ids)[parsed.model_idx]])
    obs_i = np.asarray([iid[i] for i in np.asarray(parsed.item_ids)[parsed.item_idx]])
    kb = np.asarray(draws.item_benchmark)
    theta, b = draws.ability.mean(0), draws.difficulty.mean(0)
    a = np.exp(draws.log_discrimination.mean(0))
    fitted = expit(a[obs_i] * (theta[obs_m, kb[obs_i]] - b[obs_i]))
    shape = (len(draws.model_ids), len(draws.item_ids))
    resid, seen, yy, pp = (np.zeros(shape), np.zeros(shape, bool), np.zeros(shape),
                           np.zeros(shape))
    resid[obs_m, obs_i] = parsed.response - fitted
    seen[obs_m, obs_i] = True
    yy[obs_m, obs_i] = parsed.response
    pp[obs_m, obs_i] = fitted
    half = rng.integers(0, 2, kb.size)
    tm = np.asarray([mid.get(m, -1) for m in models])
    out_train, out_oracle = p.copy(), p.copy()
    order = np.argsort(items, kind="stable")
    cuts = np.flatnonzero(np.r_[True, items[order][1:] != items[order][:-1], True])
    for k, name in enumerate(draws.benchmark_ids):
        cols = np.flatnonzero(kb == k)
        corr_all = residual_correlation(resid[:, cols], seen[:, cols])
        cols_a, cols_b = cols[half[cols] == 0], cols[half[cols] == 1]
        corr_a = residual_correlation(resid[:, cols_a], seen[:, cols_a])
        base, shift_t, target = [], [], []
        for j in cols_b:  # training items as new ones: n_revealed models revealed
            ms = np.flatnonzero(seen[:, j])
            if ms.size >= n_revealed + 2:
                rev = rng.choice(ms, n_revealed, replace=False)
                rest = np.setdiff1d(ms, rev)
                shift_t.append(corr_a[np.ix_(rest, rev)] @ resid[rev, j])
                base.append(pp[rest, j])
                target.append(yy[rest, j])
        c_train = fit_shift(np.concatenate(base), np.concatenate(shift_t), np.concatenate(target))
        shift = np.zeros(p.size)
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            rows = order[lo:hi]
            rev = rows[~scored[rows]]
            if bench[rows[0]] == name and rev.size and (tm[rows] >= 0).all():
                shift[rows] = corr_all[np.ix_(tm[rows], tm[rev])] @ (y[rev] - p[rev])
        s = scored & (bench == name)
        if not s.any():
            continue
        z = logit(np.clip(p[s], 1e-6, 1 - 1e-6))
        out_train[s] = expit(z + c_train * shift[s])
        out_oracle[s] = expit(z + fit_shift(p[s], shift[s], y[s]) * shift[s])
    n = scored.sum()
    return nll(y[scored], out_train[scored]) / n, nll(y[scored], out_oracle[scored]) / n


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
    rows, floor_rows, similarity_rows = [], [], []
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
        if k:
            sim = similarity_check(draws, parsed, models, items, bench, y, p, scored, k,
                                   np.random.default_rng(0))
            similarity_rows.append(f"| {k} | {base:.4f} | {sim[0]:.4f} | {sim[1]:.4f} |")
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
    print("\nModel similarity (check 4):\n")
    print("| k | log-loss | + similarity, c fitted on training items | + similarity, c fitted on "
          "the scored pairs (upper bound) |\n|---|---|---|---|")
    print("\n".join(similarity_rows))


if __name__ == "__main__":
    main()
