"""Speed of the numpy-only predictive engine on a synthetic 1,000-draw posterior.

Targets (issue 5): predictions for 400k pairs (2,000 new items x 200 models) with 20k revealed
labels in < 30 s and < 4 GB; score_pairs on 400k candidates in < 60 s.

Run: .venv/bin/python bench/predict_speed.py [--out bench/results/predict_speed.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from predict_synth import synthetic_world  # noqa: E402

from bayesirt.predictive import new_items_from_arrays, predict_pairs, score_pairs  # noqa: E402


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--labels", type=int, default=20000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    draws, truth = synthetic_world(
        rng, n_models=args.models, n_bench=5, n_items=3000, n_draws=args.draws,
        n_new=args.items, categories=4, embedding_dim=384, n_components=16)
    t_build = time.perf_counter() - t0
    new_ids = [f"new{j}" for j in range(args.items)]
    nb = truth["new_bench"]
    new_items = new_items_from_arrays(
        new_ids, [f"b{k}" for k in nb], [f"b{k}/c{j % 4}" for j, k in enumerate(nb)],
        rng.normal(size=(args.items, 384)).astype(np.float32))
    mm, ii = np.meshgrid(np.arange(args.models), np.arange(args.items))
    models = np.array([f"m{m}" for m in range(args.models)], dtype=object)[mm.ravel()]
    items = np.array(new_ids, dtype=object)[ii.ravel()]
    lab = rng.choice(models.size, args.labels, replace=False)
    y = rng.integers(0, 2, args.labels)
    labels = (models[lab], items[lab], y)
    keep = np.ones(models.size, bool)
    keep[lab] = False

    rows = []
    t0, c0 = time.perf_counter(), time.process_time()
    p = predict_pairs(draws, models, items, new_items=new_items, labels=labels)
    t_pred, c_pred = time.perf_counter() - t0, time.process_time() - c0
    rows.append(("predict_pairs", models.size, args.labels, t_pred, c_pred, peak_rss_gb()))
    assert np.all(np.isfinite(p))
    t0, c0 = time.perf_counter(), time.process_time()
    s = score_pairs(draws, models[keep], items[keep], new_items=new_items, labels=labels)
    t_score, c_score = time.perf_counter() - t0, time.process_time() - c0
    rows.append(("score_pairs bald", int(keep.sum()), args.labels, t_score, c_score,
                 peak_rss_gb()))
    assert np.all(np.isfinite(s))
    lines = [
        "# predict speed (bench/predict_speed.py)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared), "
        f"python {platform.python_version()}, numpy {np.__version__}.",
        f"Synthetic posterior: {args.draws} draws, {args.models} models, 5 benchmarks, 2PL with "
        f"categories and a 16-component embedding regression (384-d); built in {t_build:.1f} s.",
        "",
        "| call | pairs | labels | wall s | CPU s | peak RSS GB (process) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r[0]} | {r[1]:,} | {r[2]:,} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.2f} |"
              for r in rows]
    lines += ["", "Wall time is on a machine shared with other jobs (load average "
              f"{os.getloadavg()[0]:.1f} at the end); CPU s is this process's CPU time."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
