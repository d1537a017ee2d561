#!/usr/bin/env python
"""Sampler-side levers that keep the posterior exact: min-ESS per second, before and after.

For each data set and variant, one default-sized fit (4 chains x warm-up + 1,000 draws,
seed 0, ``--parameterisation auto``): wall time (ADVI start + compilation + warm-up +
sampling), min bulk- and tail-ESS over every parameter, min-ESS per second (the smaller of
the two over the wall), leapfrog steps per draw, divergences and R-hat max.

Variants:

* ``diag-1500`` — the default: diagonal metric, 1,500 warm-up iterations;
* ``block-1500`` — ``--mass-matrix block`` (a dense block over the benchmark- and
  category-level hyperparameters);
* ``diag-750`` / ``block-750`` — half the warm-up (the ADVI start already places chains in
  the bulk, so the question is whether the second half of warm-up buys ESS per second).

Data sets: the small shared set, and two robustness-suite members that mix worst
(``bench/robustness.py``: 25% of the full set's models; the full set thinned to density
0.1). The full real-multibench (69 minutes per fit on this CPU) is not run here: a lever is
kept as a default only with its full-data before/after.

Usage::

    python bench/sampler_levers.py --sets small real-full-models25 --out /tmp/levers.jsonl
    python bench/sampler_levers.py --render /tmp/levers.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

VARIANTS = {
    "diag-1500": {"mass_matrix": "diagonal", "warmup": 1500},
    "block-1500": {"mass_matrix": "block", "warmup": 1500},
    "diag-750": {"mass_matrix": "diagonal", "warmup": 750},
    "block-750": {"mass_matrix": "block", "warmup": 750},
}


def load_set(name: str):
    if name == "small":
        from bayesirt import data as bdata

        return bdata.load(ROOT.parent / "shared/data/real-multibench-small/train")
    import robustness

    return robustness.MEMBERS[name]()


def run(set_name: str, variant: str, seed: int) -> dict:
    import jax

    from bayesirt.inference import FitConfig, convergence_headline, fit

    data = load_set(set_name)
    started = time.perf_counter()
    res = fit(jax.random.key(seed), data,
              FitConfig(seed=seed, progress=False, **VARIANTS[variant]))
    wall = time.perf_counter() - started
    head = convergence_headline(res.posterior, res.sample_stats, res.max_tree_depth,
                                res.dims, res.coords, constants=res.constant_data)
    ess_min = min(float(head["ess_bulk_min"]), float(head["ess_tail_min"]))
    return {
        "set": set_name, "variant": variant, "seed": seed, "n_obs": int(data.n_obs),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}",
        "load_before": os.getloadavg()[0],
        "wall_s": round(wall, 1), "rhat_max": float(head["rhat_max"]),
        "ess_bulk_min": float(head["ess_bulk_min"]), "ess_tail_min": float(head["ess_tail_min"]),
        "ess_bulk_min_name": head.get("ess_bulk_min_name", ""),
        "min_ess_per_s": round(ess_min / wall, 3),
        "steps_per_draw": round(float(np.mean(res.sample_stats["n_steps"])), 1),
        "divergences": int(head["divergences"]),
    }


def render(records: list[dict]) -> str:
    lines = ["| data | variant | wall s | steps/draw | R-hat max | bulk-ESS min | tail-ESS min "
             "| min-ESS/s | vs default | div |", "|---|---|---|---|---|---|---|---|---|---|"]
    base = {r["set"]: r["min_ess_per_s"] for r in records if r["variant"] == "diag-1500"}
    for r in records:
        ratio = (f"{r['min_ess_per_s'] / base[r['set']]:.2f}x" if r["set"] in base
                 and base[r["set"]] else "—")
        lines.append(
            f"| {r['set']} ({r['n_obs']:,} obs) | {r['variant']} | {r['wall_s']:.0f} | "
            f"{r['steps_per_draw']} | {r['rhat_max']:.4f} | {r['ess_bulk_min']:.0f} "
            f"({r['ess_bulk_min_name']}) | {r['ess_tail_min']:.0f} | {r['min_ess_per_s']:.3f} "
            f"| {ratio} | {r['divergences']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="*", default=["small", "real-full-models25"])
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/bayesirt-levers.jsonl")
    ap.add_argument("--render", nargs="*", metavar="JSONL")
    args = ap.parse_args()
    if args.render is not None:
        recs = [json.loads(line) for p in args.render for line in Path(p).read_text()
                .splitlines() if line.strip()]
        print(render(recs))
        return 0
    for set_name in args.sets:
        for variant in args.variants:
            rec = run(set_name, variant, args.seed)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(render([rec]).splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
