#!/usr/bin/env python
"""The loadings' tilt, power 1 (the default) against 2, on the small set: convergence and
new-item accuracy of the CLI-default fit at seeds 0, 1, 2.

The population of loadings has density proportional to ``(1 - rho^2)^p N(logit rho)``
(``bayesirt.models.population.UNIQUENESS_POWER``; p = 1 is the default). A chain of the
small set's half-item fit (``bench/reliability.py``, seed 0, half B) ran into the Heywood
corner at p = 1 (rho of three benchmarks 0.98, every draw at the tree-depth limit). This
script fits the whole small set with each power (4 chains x 1,500 + 1,000, seed S, saved
under ``--work``), records the convergence headline, and scores the new-item predictions at
k = 0 / 3 / 10 with ``bench/predict_accuracy.py`` (the defaults of ``bayesirt predict``).

Usage::

    python bench/tilt_power.py --powers 1 2 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SMALL = ROOT.parent / "shared/data/real-multibench-small"


def fit_one(power: float, seed: int, work: Path) -> dict:
    """Fit the small set at this power and seed; the headline and the posterior's path."""
    import jax
    import numpy as np

    from bayesirt import pipeline
    from bayesirt.inference.headline import fit_summary
    from bayesirt.models import population

    population.UNIQUENESS_POWER = power
    data = pipeline.load_data(SMALL / "train")
    started = time.perf_counter()
    res = pipeline.fit(jax.random.key(seed), data, seed=seed, progress=False)
    wall = time.perf_counter() - started
    head, _, _ = fit_summary(res)
    path = work / f"small-p{power:g}-s{seed}.nc"
    pipeline.save_posterior(res, path)
    rho = np.asarray(res.posterior["rho"]).mean(axis=(0, 1))
    return {"power": power, "seed": seed, "posterior": str(path), "wall_s": round(wall, 1),
            **{k: head[k] for k in ("rhat_max", "ess_bulk_min", "ess_tail_min",
                                    "divergences", "tree_depth_hits")},
            "rhat_max_name": head.get("rhat_max_name", ""),
            "steps_per_draw": round(float(np.mean(res.sample_stats["n_steps"])), 1),
            "rho": dict(zip(res.coords["benchmark"], np.round(rho, 3).tolist(), strict=True))}


def accuracy(posterior: str) -> dict[str, float]:
    """k = 0 / 3 / 10 log-loss of bench/predict_accuracy.py on the small set's test pairs."""
    out = subprocess.run([sys.executable, str(ROOT / "bench/predict_accuracy.py"), posterior,
                          str(SMALL), "--skip-adaptive"], capture_output=True, text=True,
                         check=True).stdout
    found = re.findall(r"^k=(\d+): log-loss ([0-9.]+) AUC ([0-9.]+)", out, flags=re.M)
    return {f"k{k}": float(ll) for k, ll, _ in found} | {
        f"auc_k{k}": float(a) for k, _, a in found}


def score_and_record(rec: dict, out: Path) -> None:
    """Add the new-item accuracy, date and machine to one fit's record; append and print it."""
    rec.update(accuracy(rec["posterior"]), date=time.strftime("%Y-%m-%d %H:%M"),
               machine=f"{os.cpu_count()} CPU cores, {platform.machine()}")
    with out.open("a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--powers", type=float, nargs="*", default=[1.0, 2.0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--work", type=Path, default=Path("/tmp/bayesirt-tilt-power"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/tilt_power_small.jsonl")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for power in args.powers:
        for seed in args.seeds:
            score_and_record(fit_one(power, seed, args.work), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
