"""The streaming bundle through the local coordinator, leave one benchmark out.

For each held-out benchmark: the fit without it (``bayesirt heldout``'s cache, written by
bench/lobo.py: ``WORK/<set>/fits/without-<b>.nc``) is bundled with
``--protocol streaming`` (one ZIP per acquisition policy asked for) and replayed by
``bayesirt evaluate ZIP DATA --protocol streaming`` (runs of 12 pairs, split per pair,
seeds 0, 1, 2 by default): Brier per budget, ALC, ECE, beside the organisers' empirical
mean and the smoothed mean through the same coordinator; then the per-call timings of the
bundle (first call of a worker = the checkpoint's conditioning; later calls).

Run:
  .venv/bin/python bench/streaming.py --set small
  .venv/bin/python bench/streaming.py --set small --acquisition random bald --seeds 0 \
      --benchmarks cruxeval_o gsm8k --tag acquisition
  .venv/bin/python bench/streaming.py --set dev --benchmarks bfcl cruxeval_o
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SETS = {"small": ROOT.parent / "shared/data/real-multibench-small",
        "dev": ROOT.parent / "shared/data/real-multibench"}
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=sorted(SETS), default="small")
    ap.add_argument("--work", default="/tmp/bayesirt-lobo")
    ap.add_argument("--benchmarks", nargs="+")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--scopes", nargs="+", default=["pair"])
    ap.add_argument("--acquisition", nargs="+", default=["random"])
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    from bayesirt import data as _data
    from bayesirt.submission import build_bundle
    from bayesirt.submission.heldout_report import summarise
    from bayesirt.submission.stream_eval import evaluate_streaming

    root = SETS[args.set]
    fits = Path(args.work) / args.set / "fits"
    benches = args.benchmarks or list(_data.load(root).benchmark_ids)
    name = f"streaming_{args.set}" + (f"_{args.tag}" if args.tag else "")
    all_records, timings, lines = [], {}, []
    t0 = time.time()
    for policy in args.acquisition:
        for b in benches:
            fit = fits / f"without-{b}.nc"
            if not fit.is_file():
                sys.exit(f"{fit} missing: run bench/lobo.py --set {args.set} first")
            zip_path = Path(args.work) / args.set / f"stream-{policy}-without-{b}.zip"
            build_bundle(fit, zip_path, protocol="streaming", acquisition=policy)
            res = evaluate_streaming(zip_path, root, Path(args.work) / args.set / f"stream-{b}",
                                     benchmarks=[b], pairs=args.pairs, seeds=args.seeds,
                                     scopes=args.scopes, workers=args.workers, echo=print)
            for r in res["records"]:
                r["acquisition"] = policy
            all_records += res["records"]
            timings[(policy, b)] = res["timing"]
    wall = time.time() - t0
    with open(RESULTS / f"{name}.jsonl", "w") as fh:
        for r in all_records:
            fh.write(json.dumps(r) + "\n")

    lines += [f"# The streaming bundle through `bayesirt evaluate --protocol streaming` "
              f"({args.set} set; bench/streaming.py)", "",
              f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), python "
              f"{platform.python_version()}, no GPU; other jobs shared it (timings are upper "
              f"bounds). Posteriors: the leave-one-benchmark-out fits of bench/lobo.py "
              f"(`{fits}`), bundled with `--protocol streaming` (1000 draws). Runs of up to "
              f"{args.pairs} pairs, split per {'/'.join(args.scopes)}, seeds "
              f"{', '.join(map(str, args.seeds))}, {args.workers} fresh workers per "
              f"checkpoint. Wall time {wall:.0f} s.", ""]
    for policy in args.acquisition:
        recs = [r for r in all_records if r["acquisition"] == policy]
        s = summarise(recs)
        lines += [f"## acquisition: {policy}", "",
                  "| held out | runs | bayesirt ALC | empirical mean ALC | smoothed mean ALC | "
                  "bayesirt Brier 0 / 1 / 3 / 7 / 15 / 31 | ECE at 0 / 31 | below empirical |",
                  "|---|---|---|---|---|---|---|---|"]
        alcs = {p: [] for p in ("bayesirt", "empirical_mean", "smoothed_mean")}
        for scope in args.scopes:
            for b in benches:
                row = {p: s[(b, scope, p)] for p in alcs}
                for p in alcs:
                    alcs[p].append(row[p]["alc"])
                ece = [np.mean([r["ece"] for r in recs if r["benchmark"] == b and r["scope"]
                                == scope and r["predictor"] == "bayesirt" and r["budget"] == k])
                       for k in (0, 31)]
                bz = row["bayesirt"]
                lines.append(
                    f"| {b} ({scope}) | {bz['n_seeds']} | {bz['alc']:.4f} | "
                    f"{row['empirical_mean']['alc']:.4f} | {row['smoothed_mean']['alc']:.4f} | "
                    + " / ".join(f"{v:.3f}" for v in bz["brier"])
                    + f" | {ece[0]:.3f} / {ece[1]:.3f} | "
                    f"{100 * (1 - bz['alc'] / row['empirical_mean']['alc']):.1f}% |")
        m = {p: float(np.mean(v)) for p, v in alcs.items()}
        lines += [f"| mean | | {m['bayesirt']:.4f} | {m['empirical_mean']:.4f} | "
                  f"{m['smoothed_mean']:.4f} | | | "
                  f"{100 * (1 - m['bayesirt'] / m['empirical_mean']):.1f}% |", ""]
    lines += ["## per-call timings of the bundle", "",
              "| acquisition | held out | first call of a worker, median / max s | later calls, "
              "median ms | wall s |", "|---|---|---|---|---|"]
    for (policy, b), t in timings.items():
        lines.append(f"| {policy} | {b} | {t['first_call_s_median']:.2f} / "
                     f"{t['first_call_s_max']:.2f} | {t['call_ms_median']:.3f} | "
                     f"{t['wall_s']:.0f} |")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    from bayesirt.submission.heldout_report import plot_curves

    plot_curves([r for r in all_records if r["acquisition"] == args.acquisition[0]],
                RESULTS / f"{name}.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
