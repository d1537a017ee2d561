"""Held-out-benchmark replay from a saved posterior, with its population edited (a check).

A lever of the population of benchmarks (e.g. a wider spread of the benchmarks' item spreads)
is first checked here, cheaply, on a posterior fitted without the benchmark: the saved draws'
``benchmark_pop_*`` hyperparameters are scaled after the fit, and the in-process replay of
``bayesirt heldout`` (split per pair, seeds 0, 1, 2) is scored. This is not a method (the
fit never saw the edited population); a lever that helps here is then refitted with the
hyperprior changed. Also prints, per budget, the mean prediction against the truth and the
smoothed mean's, which says whether a loss is the level or the per-model spread.

Usage::

    python bench/lobo_posthoc.py FIT.nc BENCHMARK [NAME=FACTOR ...] [seeds=N]

``NAME`` is a population hyperparameter without its ``benchmark_pop_`` prefix (e.g.
``log_sigma_difficulty_scale=2``): its draws are multiplied by ``FACTOR``; ``NAME+=VALUE``
adds ``VALUE`` instead (for locations). ``seeds=N`` replays split seeds 0 .. N-1 (default 3,
as ``bayesirt heldout``'s records).
"""

from __future__ import annotations

import collections
import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np

from bayesirt import data as _data
from bayesirt import predictive
from bayesirt.pipeline import load_draws
from bayesirt.submission.heldout import BUDGETS, alc, baseline_predictions, make_task, pair_scores
from bayesirt.submission.heldout_run import _train_accuracy, benchmark_responses

DATA = "../shared/data/real-multibench-small"


def replay(draws, data_dir: str, bench: str, n_seeds: int):
    """The in-process replay of ``bayesirt heldout`` on ``bench`` (split per pair).

    Yields ``(budget, sm, sy, pair, p, q)`` per split seed 0 .. n_seeds - 1 and budget: the
    scored pairs' models, truths and pair index, bayesirt's predictions from ``draws`` and the
    smoothed mean's.
    """
    data = _data.load(data_dir)
    m, i, y = benchmark_responses(data, Path(data_dir), bench)
    acc = _train_accuracy(_data.without_benchmark(data, bench))
    new = {str(x): predictive.ItemInfo(benchmark_id=bench) for x in np.unique(i)}
    for seed in range(n_seeds):
        task = make_task(m, i, y, bench, scope="pair", seed=seed, min_items=80)
        sm, si, sy, pair = task.scored_pairs()
        for budget in BUDGETS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = predictive.predict_pairs(draws, list(sm), list(si), new_items=new,
                                             labels=task.labels(budget))
            q = baseline_predictions("smoothed_mean", task, budget, acc)
            yield budget, sm, sy, pair, p, q


def main() -> int:
    path, bench = sys.argv[1], sys.argv[2]
    edits = dict(a.split("=") for a in sys.argv[3:])
    n_seeds = int(edits.pop("seeds", 3))
    # NAME=FACTOR multiplies; NAME+=VALUE (written NAME+=VALUE) adds.
    draws = load_draws(path, max_draws=1000)
    changes = {}
    for name, factor in edits.items():
        field = f"benchmark_pop_{name.rstrip('+')}"
        if name.endswith("+"):
            changes[field] = getattr(draws, field) + float(factor)
        else:
            changes[field] = getattr(draws, field) * float(factor)
    draws = dataclasses.replace(draws, **changes)
    brier = collections.defaultdict(list)
    level = collections.defaultdict(list)
    for budget, _, sy, pair, p, q in replay(draws, DATA, bench, n_seeds):
        brier[("bayesirt", budget)].append(pair_scores(sy, p, pair)["brier"])
        brier[("smoothed", budget)].append(pair_scores(sy, q, pair)["brier"])
        level[budget].append((p.mean(), q.mean(), sy.mean()))
    print(bench, edits or "as fitted", f"split seeds 0-{n_seeds - 1}")
    for name in ("bayesirt", "smoothed"):
        curve = [float(np.mean(brier[(name, k)])) for k in BUDGETS]
        print(f"  {name:9s} Brier", " / ".join(f"{x:.3f}" for x in curve),
              f" ALC {alc(curve):.4f}")
    print("  mean prediction ours / smoothed / truth per budget:",
          "; ".join(f"{k}: " + "/".join(f"{v:.2f}" for v in np.mean(level[k], axis=0))
                    for k in BUDGETS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
