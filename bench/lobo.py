"""Leave-one-benchmark-out learning curves, and the new-benchmark engine against NUTS refits.

1. ``bayesirt heldout`` on a data set (every benchmark held out in turn, both split scopes,
   split seeds 0, 1, 2): ALC, Brier per budget, beside the organisers' empirical mean and a
   smoothed mean -> bench/results/lobo_<set>.md / .png / .jsonl.
2. ``--refit``: the gold standard of the engine's joint conditioning. For a held-out
   benchmark and budgets 3 and 15 (pair split, seed 0, training items only), hier2pl is
   refitted by NUTS on the other benchmarks PLUS the revealed labels; its posterior
   predictive of the scored pairs (new items of a now-known benchmark, no categories, as the
   engine sees them) is compared with the engine's prediction from the posterior that never
   saw the benchmark, conditioned on the same labels: mean |dp| and log-loss.

Run:
  .venv/bin/python bench/lobo.py --set small
  .venv/bin/python bench/lobo.py --set small --refit cruxeval_o gsm8k
  .venv/bin/python bench/lobo.py --set small --scopes pair --tag tilt --work /tmp/x
  .venv/bin/python bench/lobo.py --set dev --benchmarks bfcl cruxeval_o --chains 2 \
      --warmup 250 --draws 250
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SETS = {"small": ROOT.parent / "shared/data/real-multibench-small",
        "dev": ROOT.parent / "shared/data/real-multibench"}
RESULTS = ROOT / "bench" / "results"


def machine() -> str:
    return (f"{os.cpu_count()} CPU cores ({platform.machine()}), python "
            f"{platform.python_version()}, no GPU")


def run_curves(args) -> None:
    import jax

    from bayesirt import pipeline

    out = Path(args.work) / args.set
    config = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws,
              "progress": False, "seed": 0}
    t0 = time.time()
    res = pipeline.heldout(jax.random.key(0), SETS[args.set], out, benchmarks=args.benchmarks,
                           scopes=tuple(args.scopes), seeds=tuple(args.split_seeds), echo=print,
                           **config)
    wall = time.time() - t0
    # A tagged run (e.g. one model variant, one scope) must not overwrite the record.
    name = f"lobo_{args.set}" + (f"_{args.tag}" if args.tag else "")
    stem = RESULTS / name
    Path(f"{stem}.png").write_bytes(Path(res["plot_path"]).read_bytes())
    Path(f"{stem}.jsonl").write_text(Path(res["records_path"]).read_text())
    head = (f"# Leave-one-benchmark-out on real-multibench{'-small' if args.set == 'small' else ''}"
            f" (bench/lobo.py)\n\nMachine: {machine()}. Fits: hier2pl, {args.chains} chains x "
            f"{args.warmup} warm-up + {args.draws} draws, seed 0, one per held-out benchmark "
            f"(on the other benchmarks). Protocol: `bayesirt heldout` (pairs with >= 80 items, "
            f"50/50 split, 0/1/3/7/15/31 random labels per pair, one shared label list), split "
            f"seeds {', '.join(map(str, args.split_seeds))} averaged; "
            f"ALC = 0.1 B0 + 0.2 (B1 + B3 + B7 + B15) + 0.1 B31. "
            f"Wall time of the whole run: {wall:.0f} s.\n\n")
    Path(f"{stem}.md").write_text(head + res["table"] + f"\n![curves]({name}.png)\n")
    print(res["table"])


def run_refit(args) -> None:
    import jax
    from robustness import subset

    from bayesirt import data as bdata
    from bayesirt.inference import FitConfig, fit
    from bayesirt.pipeline import load_draws
    from bayesirt.posteriors import flat_arrays, save
    from bayesirt.predictive import ItemInfo, PosteriorDraws, predict_pairs
    from bayesirt.submission.heldout import make_task, pair_scores

    data = bdata.load(SETS[args.set])
    rows = []
    for b in args.refit:
        k = data.benchmark_ids.index(b)
        on = data.item_benchmark[data.item_idx] == k
        m = np.asarray(data.model_ids, object)[data.model_idx[on]]
        i = np.asarray(data.item_ids, object)[data.item_idx[on]]
        task = make_task(m, i, data.response[on], b, scope="pair", seed=0, min_items=60)
        base = Path(args.work) / args.set / "fits" / f"without-{b}.nc"
        if not base.is_file():
            raise SystemExit(f"{base} missing: run the curves first (bench/lobo.py --set ...)")
        lobo_draws = load_draws(base, max_draws=1000)
        sm, si, sy, pair = task.scored_pairs()
        new = {str(x): ItemInfo(b) for x in np.unique(i)}
        for budget in (3, 15):
            lm, li, ly = task.labels(budget)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p_engine = predict_pairs(lobo_draws, list(sm), list(si), new_items=new,
                                         labels=(lm, li, ly))
            labelled = set(zip(lm.tolist(), li.tolist(), strict=True))
            keep = ~on.copy()
            for n in np.flatnonzero(on):
                key = (data.model_ids[data.model_idx[n]], data.item_ids[data.item_idx[n]])
                keep[n] = key in labelled
            refit_data = subset(data, keep_obs=keep, source=f"{b} budget {budget}")
            tmp = Path(args.work) / args.set / "fits" / f"refit-{b}-{budget}.nc"
            t0 = time.time()
            if args.reuse and tmp.is_file():
                wall = float("nan")  # the refit of an earlier run (same split and labels)
            else:
                res = fit(jax.random.key(1), refit_data, FitConfig(chains=4, warmup=1500,
                                                                  draws=1000, progress=False))
                wall = time.time() - t0
                save(res, tmp)
            ref_draws = PosteriorDraws.from_arrays(**flat_arrays(tmp, max_draws=1000))
            # Scored items are new items of a now-known benchmark (no category: the engine
            # had none either); models unknown to the refit (none here) would get evidence.
            new_ref = {str(x): ItemInfo(b) for x in np.unique(si) if x not in
                       set(refit_data.item_ids)}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p_refit = predict_pairs(ref_draws, list(sm), list(si), new_items=new_ref)
            sc_e, sc_r = pair_scores(sy, p_engine, pair), pair_scores(sy, p_refit, pair)
            rows.append({"benchmark": b, "budget": budget, "n_labels": int(lm.size),
                         "n_scored": int(sy.size), "mean_abs_dp": float(np.abs(
                             p_engine - p_refit).mean()),
                         "max_abs_dp": float(np.abs(p_engine - p_refit).max()),
                         "log_loss_engine": sc_e["log_loss"], "log_loss_refit": sc_r["log_loss"],
                         "brier_engine": sc_e["brier"], "brier_refit": sc_r["brier"],
                         "refit_wall_s": wall})
            print(rows[-1], flush=True)
    lines = ["# New-benchmark engine vs NUTS refit with the labels (bench/lobo.py --refit)\n",
             f"Machine: {machine()}. Held-out benchmark's training items only, pair split "
             "(seed 0), pairs with >= 60 items; engine: `predict_pairs` from the posterior "
             "fitted without the benchmark, conditioned on the labels (Metropolis-within-"
             "Gibbs per draw, `bayesirt.predictive.newbench`); refit: hier2pl by NUTS (4 x "
             "1500 + 1000, seed 1) on the other benchmarks plus the revealed labels, its "
             "posterior predictive of the same scored pairs. Acceptance: mean |dp| <= 0.02 "
             "and log-loss within 0.005.\n",
             "| held out | budget | labels | scored | mean abs dp | max abs dp | log-loss engine "
             "| log-loss refit | Brier engine | Brier refit |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['benchmark']} | {r['budget']} | {r['n_labels']} | {r['n_scored']} | "
                     f"{r['mean_abs_dp']:.4f} | {r['max_abs_dp']:.3f} | "
                     f"{r['log_loss_engine']:.4f} | {r['log_loss_refit']:.4f} | "
                     f"{r['brier_engine']:.4f} | {r['brier_refit']:.4f} |")
    (RESULTS / f"lobo_refit_{args.set}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"lobo_refit_{args.set}.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=sorted(SETS), default="small")
    ap.add_argument("--benchmarks", nargs="+", default=None)
    ap.add_argument("--refit", nargs="+", default=None, metavar="BENCHMARK")
    ap.add_argument("--scopes", nargs="+", default=["pair", "item"], choices=("pair", "item"))
    ap.add_argument("--tag", default="",
                    help="suffix of the result files (bench/results/lobo_<set>_<tag>.*)")
    ap.add_argument("--split-seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--work", default="/tmp/bayesirt-lobo", help="fits and run outputs")
    ap.add_argument("--reuse", action="store_true",
                    help="--refit: reuse refits already in --work (only the engine re-runs)")
    args = ap.parse_args()
    if args.refit:
        run_refit(args)
    else:
        run_curves(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
