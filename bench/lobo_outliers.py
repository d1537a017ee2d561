"""Leave one benchmark out of the small set with and without ``hier2pl --outliers``.

Usage::

    python bench/lobo_outliers.py OUT_DIR 0|1 BENCH[,BENCH...]

Fits (kept in OUT_DIR/fits and reused) on the other benchmarks, then the in-process
replay of ``bayesirt heldout`` (split per pair, seeds 0, 1, 2); prints Brier per budget and
ALC for bayesirt and the two mean baselines. Results: ``bench/results/outliers_small.md``.
"""

import collections
import sys

import jax
import numpy as np

from bayesirt.submission.heldout import BUDGETS, alc
from bayesirt.submission.heldout_run import run_heldout

FIT_KEYS = ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "steps_per_draw",
            "wall_s")


def main() -> int:
    out, outliers, benches = sys.argv[1], sys.argv[2] == "1", sys.argv[3].split(",")
    res = run_heldout(jax.random.key(0), "../shared/data/real-multibench-small", out,
                      benchmarks=benches, scopes=("pair",), seeds=(0, 1, 2),
                      echo=lambda s: None, progress=False, outliers=outliers)
    brier = collections.defaultdict(list)
    for r in res["records"]:
        brier[(r["benchmark"], r["predictor"], r["budget"])].append(r["brier"])
    label = "outliers" if outliers else "plain"
    for b in benches:
        for p in ("bayesirt", "smoothed_mean", "empirical_mean"):
            curve = [float(np.mean(brier[(b, p, k)])) for k in BUDGETS]
            print(b, label, p, [round(x, 4) for x in curve], "ALC", round(alc(curve), 4))
    for b, fit in res["fits"].items():
        print(b, {k: v for k, v in fit.items() if k in FIT_KEYS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
