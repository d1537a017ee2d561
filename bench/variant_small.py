#!/usr/bin/env python
"""A geometry variant of the robustness suite on the whole small set: convergence and
new-item accuracy of the CLI-default fit at seeds 0, 1, 2.

``--variant`` names an entry of ``bench/robustness.py``'s ``VARIANTS`` (``default`` is the
code as it stands), applied to this process only. Each fit is ``pipeline.fit`` with the
CLI defaults (4 chains x 1,500 warm-up + the model's draws: 2,000 for hier2pl
since 2026-12-07, 1,000 before), saved under ``--work``; its convergence headline is
recorded and its new-item predictions are scored at k = 0 / 3 / 10 by
``bench/predict_accuracy.py`` (the defaults of ``bayesirt predict``).

Usage::

    python bench/variant_small.py --variant split-both+pop-min4 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SMALL = ROOT.parent / "shared/data/real-multibench-small"


def fit_one(variant: str, seed: int, work: Path) -> dict:
    """Fit the small set under ``variant`` at this seed; the headline and the posterior."""
    import jax
    import numpy as np
    from robustness import VARIANTS, apply_variant

    from bayesirt import pipeline
    from bayesirt.inference.headline import fit_summary

    apply_variant(variant)
    overrides = {k.split(".", 1)[1]: v for k, v in VARIANTS[variant].items()
                 if k.startswith("config.")}
    data = pipeline.load_data(SMALL / "train")
    started = time.perf_counter()
    res = pipeline.fit(jax.random.key(seed), data, seed=seed, progress=False, **overrides)
    wall = time.perf_counter() - started
    head, _, _ = fit_summary(res)
    path = work / f"small-{variant}-s{seed}.nc"
    pipeline.save_posterior(res, path)
    return {"variant": variant, "seed": seed, "posterior": str(path), "wall_s": round(wall, 1),
            **{k: head[k] for k in ("rhat_max", "ess_bulk_min", "ess_tail_min",
                                    "divergences", "tree_depth_hits")},
            "rhat_max_name": head.get("rhat_max_name", ""),
            "ess_bulk_min_name": head.get("ess_bulk_min_name", ""),
            "steps_per_draw": round(float(np.mean(res.sample_stats["n_steps"])), 1)}


def main() -> int:
    from tilt_power import score_and_record

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variant", default="default")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bayesirt-variant-small"))
    ap.add_argument("--out", type=Path, required=True, help="JSON lines appended here")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        score_and_record(fit_one(args.variant, seed, args.work), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
