"""Per-call speed of the streaming runtime: a checkpoint's first call and the ones after.

The issue's target (one CPU core, numpy only): the first ``predict`` of a checkpoint, which
conditions on ~400 labels of 12 pairs, under 2 s; every later call under 5 ms (median).
A fresh ``StreamingPredictor`` per checkpoint (the platform recreates its workers), the
labels of 12 pairs of a held-out benchmark at budgets 1, 7, 15, 31 (the last ~372 labels),
then 1,000 calls on distinct evaluation items. CPU time of this process (BLAS pinned to
one thread) is recorded beside wall time, since other jobs may share the machine.

Run:
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/stream_speed.py \
      /tmp/bayesirt-lobo/small/fits/without-cruxeval_o.nc cruxeval_o
"""

from __future__ import annotations

import os

for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SMALL = ROOT.parent / "shared/data/real-multibench-small"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("posterior")
    ap.add_argument("benchmark")
    ap.add_argument("--data", default=str(SMALL))
    ap.add_argument("--out", default=str(ROOT / "bench/results/stream_speed.md"))
    args = ap.parse_args()

    from bayesirt import data as _data
    from bayesirt.pipeline import load_draws
    from bayesirt.predictive.streaming import StreamingPredictor
    from bayesirt.submission.coordinator import make_run, subject_dicts
    from bayesirt.submission.heldout import make_task
    from bayesirt.submission.heldout_run import benchmark_responses

    root = Path(args.data)
    data = _data.load(root)
    draws = load_draws(args.posterior, max_draws=1000)
    m, i, y = benchmark_responses(data, root, args.benchmark)
    run = make_run(make_task(m, i, y, args.benchmark, seed=0), subject_dicts(data),
                   _data.read_item_texts(root), 12)
    targets = [[run.subjects[p], it] for p, (items, _) in enumerate(run.evaluate)
               for it in items]
    rows = []
    for budget in (1, 7, 15, 31):
        labeled = [[[run.subjects[p], it], int(v)] for p, (items, ys) in enumerate(run.acquire)
                   for it, v in zip(items[:budget], ys[:budget], strict=True)]
        sp = StreamingPredictor(draws)
        c0, w0 = time.process_time(), time.perf_counter()
        sp.predict(targets[0], labeled)
        first_cpu, first_wall = time.process_time() - c0, time.perf_counter() - w0
        calls = []
        for t in targets[1:1001]:
            c = time.perf_counter()
            sp.predict(t, labeled)
            calls.append(time.perf_counter() - c)
        rows.append((budget, len(labeled), first_cpu, first_wall, 1000 * np.median(calls),
                     1000 * np.percentile(calls, 99), len(calls)))
        print(rows[-1], flush=True)
    lines = [
        "# Streaming runtime per-call speed (bench/stream_speed.py)", "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), python "
        f"{platform.python_version()}, numpy {np.__version__}, BLAS pinned to one thread; no "
        "GPU. Other jobs shared the machine (a NUTS fit on both cores), so wall times are "
        "upper bounds; CPU seconds are this process's own.", "",
        f"Posterior: `{args.posterior}` (1000 draws; 128 chains for the new benchmark); held "
        f"out {args.benchmark}, 12 pairs (split per pair, seed 0).", "",
        "| labels per pair | labels | first call CPU s | first call wall s | later calls "
        "median ms | p99 ms | later calls |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.3f} | "
                     f"{r[5]:.3f} | {r[6]} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
