"""Levers of the neighbour refinements on new-item accuracy (one posterior, many settings).

Scores ``predict_pairs`` as ``bayesirt predict`` calls it (neighbour difficulty prior, local
and category ability offsets, empirical prior shape) on the unrevealed test pairs, as
``docs/peers.md`` does, for each combination of

* ``--n-neighbours``: how many most-similar fitted items make a new item's neighbourhood;
* ``--residual-scale``: how a model's residuals on a group of fitted items become an ability
  offset (``bayesirt.predictive.neighbours.RESIDUAL_SCALE``).

Usage::

    python bench/neighbour_levers.py POSTERIOR DATA_DIR --n-neighbours 10 20 40 \
        --residual-scale probability logit [--ks 3 10] [--out results.md]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> int:
    from predict_accuracy import auc, log_loss, read_csv

    from bayesirt import data as bdata
    from bayesirt import pipeline
    from bayesirt.predictive import inputs, predict_pairs
    from bayesirt.predictive import neighbours as neighbours_module

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("posterior")
    ap.add_argument("data_dir")
    ap.add_argument("--n-neighbours", type=int, nargs="+", default=[20])
    ap.add_argument("--residual-scale", nargs="+", default=["probability"],
                    choices=("probability", "logit"))
    ap.add_argument("--ks", type=int, nargs="+", default=[0, 3, 10])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    data = Path(args.data_dir)
    draws = pipeline.load_draws(args.posterior)
    parsed = bdata.load(data / "train", data / "test")
    models, items = inputs.test_pairs(parsed)
    truth = read_csv(data / "reference/ground_truth.csv")
    y = np.asarray(truth["label"], dtype=np.int64)
    key = {(m, i): n for n, (m, i) in enumerate(zip(models, items, strict=True))}
    new_items = inputs.new_items(draws, parsed)
    evidence = inputs.evidence(draws, parsed)
    neighbours = inputs.neighbours(parsed)
    revealed = {}
    for k in args.ks:
        rev = read_csv(data / f"reveal/k{k}_revealed.csv")
        revealed[k] = np.asarray([key[(m, i)] for m, i in zip(
            rev.get("model_id", []), rev.get("item_id", []), strict=True)], dtype=np.int64)

    rows = []
    for scale, n_nb in itertools.product(args.residual_scale, args.n_neighbours):
        neighbours_module.RESIDUAL_SCALE = scale
        cells = []
        for k in args.ks:
            idx = revealed[k]
            labels = (models[idx], items[idx], y[idx]) if idx.size else None
            t0 = time.perf_counter()
            p = predict_pairs(draws, models, items, new_items=new_items, labels=labels,
                              evidence=evidence, neighbours=neighbours, n_neighbours=n_nb)
            mask = np.ones(models.size, bool)
            mask[idx] = False
            ll, a = log_loss(y[mask], p[mask]), auc(y[mask], p[mask])
            cells.append((ll, a))
            print(f"{scale} n_nb={n_nb} k={k}: log-loss {ll:.4f} AUC {a:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        rows.append((scale, n_nb, cells))
    lines = ["| residual scale | neighbours | " + " | ".join(
        f"k={k} log-loss | k={k} AUC" for k in args.ks) + " |",
        "|---|---|" + "---|---|" * len(args.ks)]
    for scale, n_nb, cells in rows:
        lines.append(f"| {scale} | {n_nb} | " + " | ".join(
            f"{ll:.4f} | {a:.4f}" for ll, a in cells) + " |")
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
