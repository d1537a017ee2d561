"""A quick stand-in posterior (numpy only) for exercising the predictive engine at full scale.

NOT a NUTS posterior: a penalised joint-maximum-likelihood 2PL with one ability per (model,
benchmark), item difficulty/log-discrimination shrunk to per-benchmark normal priors, and
"draws" from a diagonal Laplace approximation. It exists so that bench/predict_accuracy.py can
be run on real-multibench (timing, warnings, adaptive-labelling curve) before the real fit
lands; its accuracy numbers are those of this plug-in, not of bayesirt's model.

Run: .venv/bin/python bench/predict_plugin_posterior.py DATA_DIR OUT.nc [--draws 200]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bayesirt.predictive import PosteriorDraws, save_flat  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("out")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--iters", type=int, default=60)
    args = ap.parse_args()
    t0 = time.perf_counter()
    data = Path(args.data_dir)
    with open(data / "train/train_items.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    item_ids = [r["item_id"] for r in rows]
    bench_ids = sorted({r["benchmark"] for r in rows})
    bidx = {b: k for k, b in enumerate(bench_ids)}
    item_bench = np.asarray([bidx[r["benchmark"]] for r in rows])
    iidx = {i: n for n, i in enumerate(item_ids)}
    with open(data / "train/train_responses.csv", newline="", encoding="utf-8") as fh:
        resp = list(csv.DictReader(fh))
    model_ids = sorted({r["model_id"] for r in resp})
    midx = {m: n for n, m in enumerate(model_ids)}
    mi = np.asarray([midx[r["model_id"]] for r in resp])
    ii = np.asarray([iidx[r["item_id"]] for r in resp])
    y = np.asarray([int(r["response"]) for r in resp], dtype=np.float64)
    M, J, K = len(model_ids), len(item_ids), len(bench_ids)
    kk = item_bench[ii]
    cell = mi * K + kk
    a = np.zeros(M * K)
    b = np.zeros(J)
    ld = np.zeros(J)
    mu_b, sd_b = np.zeros(K), np.ones(K)
    mu_l, sd_l = np.zeros(K), np.full(K, 0.3)
    for _ in range(args.iters):
        al = np.exp(ld[ii])
        p = expit(al * (a[cell] - b[ii]))
        r = y - p
        w = p * (1 - p)
        # Damped Newton steps, each block with its normal prior (ability prior N(0, 1.5^2)).
        ga = np.bincount(cell, al * r, M * K) - a / 1.5**2
        ha = np.bincount(cell, al**2 * w, M * K) + 1 / 1.5**2
        a += np.clip(ga / ha, -1, 1)
        p = expit(al * (a[cell] - b[ii]))
        r, w = y - p, p * (1 - p)
        gb = -np.bincount(ii, al * r, J) - (b - mu_b[item_bench]) / sd_b[item_bench] ** 2
        hb = np.bincount(ii, al**2 * w, J) + 1 / sd_b[item_bench] ** 2
        b += np.clip(gb / hb, -1, 1)
        x = a[cell] - b[ii]
        p = expit(al * x)
        r, w = y - p, p * (1 - p)
        gl = np.bincount(ii, al * x * r, J) - (ld - mu_l[item_bench]) / sd_l[item_bench] ** 2
        hl = np.bincount(ii, (al * x) ** 2 * w, J) + 1 / sd_l[item_bench] ** 2
        ld += np.clip(gl / hl, -0.5, 0.5)
        for k in range(K):
            on = item_bench == k
            mu_b[k], sd_b[k] = b[on].mean(), max(b[on].std(), 0.2)
            mu_l[k], sd_l[k] = ld[on].mean(), max(ld[on].std(), 0.05)
    rng = np.random.default_rng(0)
    S = args.draws
    A = a.reshape(M, K)
    sa = 1 / np.sqrt(ha.reshape(M, K))
    draws = PosteriorDraws.from_arrays(
        model_ids=model_ids, item_ids=item_ids, benchmark_ids=bench_ids,
        ability=A[None] + sa[None] * rng.normal(size=(S, M, K)),
        difficulty=b[None] + rng.normal(size=(S, J)) / np.sqrt(hb)[None],
        log_discrimination=ld[None] + rng.normal(size=(S, J)) / np.sqrt(hl)[None],
        mu_difficulty=np.tile(mu_b, (S, 1)), sigma_difficulty=np.tile(sd_b, (S, 1)),
        mu_log_discrimination=np.tile(mu_l, (S, 1)), sigma_log_discrimination=np.tile(sd_l, (S, 1)),
        ability_pop_loc=np.tile(A.mean(0), (S, 1)), ability_pop_scale=np.tile(A.std(0), (S, 1)),
        item_benchmark=item_bench,
        attrs={"model_name": "plugin-2pl-laplace (bench stand-in, not NUTS)"})
    save_flat(draws, args.out)
    print(f"wrote {args.out}: {S} draws, {M} models, {J} items, {K} benchmarks "
          f"in {time.perf_counter() - t0:.1f} s; sd_b {sd_b.round(2)}, sd_l {sd_l.round(2)}")


if __name__ == "__main__":
    main()
