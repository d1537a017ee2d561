#!/usr/bin/env python
"""Does test-retest reward the right score? The small set's design, with a known truth.

``bench/reliability.py`` finds per-model accuracy the most repeatable score on the small set
(Kendall's tau between the two halves of every benchmark's items), ahead of hier2pl's
general ability and the plain 2PL. Repeatability is not accuracy: a score with a stable bias
repeats its bias. This script asks which score is *right* on data whose truth is known.

For each replicate ``r``:

1. a truth: one draw of a posterior fitted on the real small set (the CLI defaults, seed 0;
   ``--truth hier2pl``, or ``--truth 2pl`` so that the truth is not the scored model's own
   structure) — every model's general ability ``theta`` and its ability on every benchmark
   (the cells it never took drawn from their conditional, as the posterior holds them; the
   2PL's one ability carried over), every item's difficulty and discrimination;
2. responses simulated from that truth on exactly the small set's observed cells (same
   models, items, coverage);
3. the two halves of every benchmark's items (``reliability.split_halves``, seed ``r``),
   hier2pl and 2PL fitted on each (defaults, seed ``r``), and per-model accuracy;
4. per score: the test-retest tau (half A vs half B, as in ``reliability.py``) and each
   half's tau to two truths, averaged over the halves —
   * ``theta``: the true general ability;
   * ``pool accuracy``: the true expected accuracy over the whole item pool, benchmarks
     weighted equally (what per-model accuracy would measure if every model had taken every
     benchmark; ``bayesirt.abilities.expected``).

Usage::

    python bench/retest_truth.py --replicates 3
    python bench/retest_truth.py --replicates 3 --truth 2pl
    python bench/retest_truth.py --render bench/results/retest_truth.jsonl
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

import reliability as rel  # noqa: E402


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def truth_of(draws: np.lib.npyio.NpzFile, s: int) -> dict[str, np.ndarray]:
    """One posterior draw as a truth: abilities (M, K), items (J,), general ability (M,)."""
    from bayesirt.abilities.expected import expected_accuracy

    ability = draws["ability"][s].astype(np.float64)
    difficulty = draws["difficulty"][s].astype(np.float64)
    log_disc = draws["log_discrimination"][s].astype(np.float64)
    pool = expected_accuracy(ability[None], difficulty[None], log_disc[None],
                             draws["item_benchmark"])[0]
    return {"ability": ability, "difficulty": difficulty, "discrimination": np.exp(log_disc),
            "theta": draws["theta"][s].astype(np.float64), "pool": pool}


def simulate(data, truth: dict, rng: np.random.Generator) -> np.ndarray:
    """Responses (n_obs,) drawn from the truth on the data's observed cells."""
    bench = data.item_benchmark[data.item_idx]
    eta = truth["discrimination"][data.item_idx] * (
        truth["ability"][data.model_idx, bench] - truth["difficulty"][data.item_idx])
    return (rng.random(data.n_obs) < _sigmoid(eta)).astype(np.int8)


def replicate(data, full_draws, r: int, args) -> dict:
    """Simulate, split, fit, score: one record."""
    rng = np.random.default_rng(1000 + r)
    s = int(rng.integers(full_draws["theta"].shape[0]))
    truth = truth_of(full_draws, s)
    sim = rel.with_responses(data, simulate(data, truth, rng), f"simulated r{r}")
    ids = args.truth_models
    true_theta = dict(zip(ids, truth["theta"], strict=True))
    true_pool = dict(zip(ids, truth["pool"], strict=True))
    half_a, half_b = rel.split_halves(sim, r)
    args.seed = r
    rows = []

    def row(name, sa, sb):
        rows.append({
            "method": name, "retest": rel.tau(sa, sb),
            "to_theta": float(np.mean([rel.tau(sa, true_theta), rel.tau(sb, true_theta)])),
            "to_pool": float(np.mean([rel.tau(sa, true_pool), rel.tau(sb, true_pool)])),
        })

    row("accuracy", rel.accuracy(half_a), rel.accuracy(half_b))
    row("z-scored accuracy", rel.zscored_accuracy(half_a), rel.zscored_accuracy(half_b))
    for method in args.methods:
        tag = f"sim{r}" if args.truth == "hier2pl" else f"sim-{args.truth}{r}"
        ra = rel.fit_scores(f"{tag}-{method}-halfA", half_a, method, args)
        rb = rel.fit_scores(f"{tag}-{method}-halfB", half_b, method, args)
        for score in rel.SCORES:
            row(f"{method} {score}", rel.scores(rel.score_view(ra, score)),
                rel.scores(rel.score_view(rb, score)))
            rows[-1]["rhat_max"] = max(ra["rhat_max"], rb["rhat_max"])
            rows[-1]["divergences"] = [ra["divergences"], rb["divergences"]]
    return {"truth": args.truth, "replicate": r, "truth_draw": s,
            "truth_theta_vs_pool": rel.tau(true_theta, true_pool), "rows": rows}


def render(records: list[dict]) -> str:
    """One table per truth model: scores x (retest, tau to each truth), replicates averaged."""
    out = []
    for truth in dict.fromkeys(rec.get("truth", "hier2pl") for rec in records):
        recs = [rec for rec in records if rec.get("truth", "hier2pl") == truth]
        out += [f"#### truth drawn from the {truth} posterior ({len(recs)} replicates; "
                f"fits {recs[0]['settings']}; {recs[0]['machine']})", "", _table(recs), ""]
    return "\n".join(out)


def _table(records: list[dict]) -> str:
    methods = [row["method"] for row in records[0]["rows"]]
    reps = [rec["replicate"] for rec in records]
    head = ["score", "test-retest tau", "tau to true theta", "tau to true pool accuracy"] + [
        f"retest / theta r{r}" for r in reps]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in methods:
        per = [next(row for row in rec["rows"] if row["method"] == method) for rec in records]
        cells = [method] + [f"{np.mean([p[c] for p in per]):.3f}"
                            for c in ("retest", "to_theta", "to_pool")]
        cells += [f"{p['retest']:.3f} / {p['to_theta']:.3f}" for p in per]
        out.append("| " + " | ".join(cells) + " |")
    tv = ", ".join(f"{rec['truth_theta_vs_pool']:.3f}" for rec in records)
    out += ["", f"Tau between the two truths (true theta vs true pool accuracy), by replicate: "
            f"{tv}."]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicates", type=int, default=3)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--truth", choices=("hier2pl", "2pl"), default="hier2pl",
                    help="the posterior whose draws are the truths")
    ap.add_argument("--methods", nargs="*", choices=sorted(rel.METHODS),
                    default=["hier2pl", "2pl"])
    ap.add_argument("--work", default="/tmp/bayesirt-reliability")
    ap.add_argument("--out", default=str(ROOT / "bench/results/retest_truth.jsonl"))
    ap.add_argument("--render", nargs="*", metavar="JSONL")
    args = ap.parse_args()
    if args.render is not None:
        print(render(rel.read_records(args.render)))
        return 0
    args.work = str(Path(args.work) / f"{args.chains}x{args.warmup}+{args.draws}")
    data = rel.load("small")
    args.seed = 0
    full = rel.fit_scores(f"small-{args.truth}-full-s0", data, args.truth, args)
    full_draws = np.load(full["draws"])
    args.truth_models = full["models"]  # the order of the draws' model axis
    for r in range(args.replicates):
        started = time.perf_counter()
        rec = replicate(data, full_draws, r, args)
        rec.update(settings=f"{args.chains} x ({args.warmup} + {args.draws})",
                   date=time.strftime("%Y-%m-%d %H:%M"),
                   machine=f"{os.cpu_count()} CPU cores, {platform.machine()}",
                   wall_s=round(time.perf_counter() - started, 1))
        with open(args.out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(render([rec]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
