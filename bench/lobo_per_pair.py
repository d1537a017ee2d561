"""Where a held-out benchmark's ALC is won or lost: Brier per (model, budget), ours vs smoothed.

For one benchmark held out of a fit (``bayesirt heldout``'s cached fit, ``OUT/fits/without-
<benchmark>.nc``), replays the in-process protocol of ``bayesirt heldout`` (pairs with >= 80
items, split per pair, 0/1/3/7/15/31 random labels per pair in one shared list, split seeds
0 .. N-1) and prints, per model, bayesirt's and the smoothed mean's Brier on the model's scored
half at every budget with the mean prediction and the truth, then what each group of pairs adds
to the ALC difference (a pair's Brier enters the benchmark's curve with weight 1 / n_pairs).

Usage::

    python bench/lobo_per_pair.py FIT.nc BENCHMARK [--data DIR] [--seeds 3] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
WEIGHTS = (0.1, 0.2, 0.2, 0.2, 0.2, 0.1)  # ALC weights of budgets 0, 1, 3, 7, 15, 31


def main() -> int:
    from lobo_posthoc import replay

    from bayesirt.pipeline import load_draws
    from bayesirt.submission.heldout import BUDGETS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fit")
    ap.add_argument("benchmark")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/real-multibench-small"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    draws = load_draws(args.fit, max_draws=1000)
    # (model, budget) -> rows of (ours Brier, smoothed Brier, ours mean p, smoothed mean p, truth)
    cells: dict[tuple[str, int], list[tuple[float, ...]]] = collections.defaultdict(list)
    for budget, sm, sy, _, p, q in replay(draws, args.data, args.benchmark, args.seeds):
        for model in np.unique(sm):
            k = sm == model
            cells[(model, budget)].append((
                float(np.mean((p[k] - sy[k]) ** 2)), float(np.mean((q[k] - sy[k]) ** 2)),
                float(p[k].mean()), float(q[k].mean()), float(sy[k].mean())))
    models = sorted({mm for mm, _ in cells})
    n_pairs = len(models)
    lines = [f"# Per pair: {args.benchmark} held out ({Path(args.data).name}; "
             f"bench/lobo_per_pair.py)", "",
             f"Fit `{args.fit}`; split per pair, seeds 0-{args.seeds - 1}; each cell "
             "`bayesirt / smoothed Brier (mean prediction bayesirt / smoothed / truth)`.", "",
             "| model | " + " | ".join(f"budget {b}" for b in BUDGETS) + " | ALC difference "
             "(bayesirt - smoothed) / pairs: budget 0 / budgets 1-31 |",
             "|---|" + "---|" * (len(BUDGETS) + 1)]
    contrib, at0 = {}, {}
    for model in models:
        row = [np.mean(cells[(model, b)], axis=0) for b in BUDGETS]
        contrib[model] = sum(w * (r[0] - r[1]) for w, r in zip(WEIGHTS, row, strict=True))
        contrib[model] /= n_pairs
        at0[model] = WEIGHTS[0] * (row[0][0] - row[0][1]) / n_pairs
        lines.append(f"| {model} | " + " | ".join(
            f"{r[0]:.3f} / {r[1]:.3f} ({r[2]:.2f} / {r[3]:.2f} / {r[4]:.2f})" for r in row)
            + f" | {at0[model]:+.4f} / {contrib[model] - at0[model]:+.4f} |")
    late = {mm: contrib[mm] - at0[mm] for mm in models}
    worse = sorted((c, mm) for mm, c in late.items() if c > 0)
    lines += ["", f"ALC difference over all {n_pairs} pairs: {sum(contrib.values()):+.4f} = "
              f"budget 0 {sum(at0.values()):+.4f} + budgets 1-31 {sum(late.values()):+.4f}; "
              f"of the latter, pairs where bayesirt loses after labels: "
              f"{sum(c for c, _ in worse):+.4f} ({', '.join(mm for _, mm in worse)}), "
              f"the rest {sum(c for c in late.values() if c <= 0):+.4f}."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
