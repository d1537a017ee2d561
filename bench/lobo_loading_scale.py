"""Leave one benchmark out of the small set under another hyperprior of the loadings' spread.

Usage::

    python bench/lobo_loading_scale.py OUT_DIR MEAN BENCH[,BENCH...] [KEY]

``MEAN`` is the mean of the Gamma(2) hyperprior of ``benchmark_pop_logit_loading_scale``
(the default model's is in ``bayesirt.models.population.POPULATION_PRIORS``); the script sets it
for this process only (a bench lever, not a user option). Fits (kept in OUT_DIR/fits and
reused) on the other benchmarks with key ``KEY`` (default 0, folded with the held-out
benchmark's position as ``bayesirt heldout`` does), then the in-process replay of
``bayesirt heldout`` (split per pair, seeds 0, 1, 2); prints Brier per budget and ALC for
bayesirt and the two mean baselines, and each fit's convergence headline.
Results: ``bench/results/loading_scale_small.md``.
"""

import collections
import sys

import jax
import numpy as np

from bayesirt.models import population
from bayesirt.submission.heldout import BUDGETS, alc
from bayesirt.submission.heldout_run import run_heldout

FIT_KEYS = ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "tree_depth_hits",
            "steps_per_draw", "wall_s")


def main() -> int:
    out, mean, benches = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(",")
    key = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    family, loc, _ = population.POPULATION_PRIORS["logit_loading_scale"]
    # benchmark_population() reads the table when the model is traced, so this reaches the fit.
    population.POPULATION_PRIORS["logit_loading_scale"] = (family, loc, mean)
    res = run_heldout(jax.random.key(key), "../shared/data/real-multibench-small", out,
                      benchmarks=benches, scopes=("pair",), seeds=(0, 1, 2),
                      echo=lambda s: None, progress=False)
    brier = collections.defaultdict(list)
    for r in res["records"]:
        brier[(r["benchmark"], r["predictor"], r["budget"])].append(r["brier"])
    for b in benches:
        for p in ("bayesirt", "smoothed_mean", "empirical_mean"):
            curve = [float(np.mean(brier[(b, p, k)])) for k in BUDGETS]
            print(b, f"mean {mean}", p, [round(x, 4) for x in curve], "ALC", round(alc(curve), 4))
    for b, fit in res["fits"].items():
        headline = {**fit.get("headline", {}), "wall_s": fit.get("wall_s")}
        print(b, {k: v for k, v in headline.items() if k in FIT_KEYS})
    return 0


if __name__ == "__main__":
    sys.exit(main())
