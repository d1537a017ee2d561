"""The 4-model x 3-seed grid of bench/batch_grid.toml, with 1 and with 2 workers.

Runs `bayesirt batch` (a real Dask LocalCluster) once per worker count into a fresh folder,
times it, runs `bayesirt compare` on the last run, screenshots the page with headless
Chromium, and writes bench/results/batch_grid.md and bench/results/batch_compare.png.

Usage: python bench/batch_grid.py [--workers 1,2] [--work /tmp/bayesirt-batch-grid]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"


def bayesirt(*args: object) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "bayesirt.cli", *map(str, args)],
                          capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"bayesirt {args[0]} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def screenshot(page: Path, png: Path) -> None:
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--window-size=1400,2000",
                        "--hide-scrollbars", f"--screenshot={png}", page.as_uri()],
                       check=True, capture_output=True, timeout=180)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if png.stat().st_size > 400_000:  # keep the repository light: quantise to a palette
        from PIL import Image

        Image.open(png).convert("RGB").quantize(colors=128).save(png, optimize=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "bayesirt-batch-grid"))
    ap.add_argument("--plan", default=str(HERE / "batch_grid.toml"))
    ap.add_argument("--out", default=str(HERE / "results" / "batch_grid.md"))
    ap.add_argument("--png", default=str(HERE / "results" / "batch_compare.png"))
    args = ap.parse_args()

    from bayesirt.batch.compare import text_table

    work = Path(args.work)
    runs = []
    for n in [int(x) for x in args.workers.split(",")]:
        out = work / f"workers-{n}"
        shutil.rmtree(out, ignore_errors=True)
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        proc = bayesirt("batch", args.plan, "--out", out, "--workers", n, "--no-progress")
        wall = time.perf_counter() - t0
        batch = json.loads((out / "batch.json").read_text())
        fits = [json.loads((out / f["name"] / "summary.json").read_text())
                for f in batch["fits"] if f["status"] == "ok"]
        runs.append({"workers": n, "wall": wall, "out": out, "fits": fits,
                     "failed": [f for f in batch["fits"] if f["status"] == "failed"],
                     "load": (load_before, os.getloadavg()), "where": batch["where"]})
        print(f"{n} worker(s): {wall:.0f} s, {len(fits)} ok\n{proc.stdout}", flush=True)

    last = runs[-1]["out"]
    page, numbers = work / "compare.html", work / "compare.json"
    t0 = time.perf_counter()
    bayesirt("compare", last, "--out", page, "--json", numbers)
    compare_wall = time.perf_counter() - t0
    result = json.loads(numbers.read_text())
    screenshot(page, Path(args.png))

    heldout_ll: dict[str, list[float]] = {}
    for run in runs:
        for fit in run["fits"]:
            heldout_ll.setdefault(fit["name"], []).append(fit["heldout"]["log_loss"])
    same = all(len(set(v)) == 1 for v in heldout_ll.values()) and len(runs) > 1

    lines = [
        "# Batch fitting: the 4-model x 3-seed grid on real-multibench-small",
        "",
        f"Produced by `bench/batch_grid.py` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} "
        f"CPU cores ({platform.machine()}), python {platform.python_version()}. The machine "
        "is shared with other jobs (load averages below), so wall times are upper bounds.",
        "",
        "Plan `bench/batch_grid.toml`: rasch, 2pl, hier2pl and hier2pl with `guess = true`, "
        "seeds 0, 1, 2, each **4 chains x 500 warm-up + 500 draws** (shorter than the "
        "defaults, 1,500 + 1,000, to run the grid twice on the shared 2-core machine; the "
        "settings of `small_models_loo.md`), ADVI initialisation, log-likelihood kept.",
        "",
        "## Wall time",
        "",
        "| workers | where | wall s | sum of per-fit wall s | fits ok / failed | "
        "load avg (1 min) before -> after |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        total = sum(f["wall_seconds"] for f in run["fits"])
        lines.append(f"| {run['workers']} | {run['where']} | {run['wall']:.0f} | {total:.0f} "
                     f"| {len(run['fits'])} / {len(run['failed'])} | "
                     f"{run['load'][0][0]:.1f} -> {run['load'][1][0]:.1f} |")
    lines += ["", "Each fit's chains run vectorised (4 chains on one XLA device, as "
              "`bayesirt fit --chains 4` does on 2 cores: more chains than host devices); "
              "with 1 worker the second host device is unused, with 2 workers each worker "
              "has one core. Per-fit wall times are in each summary.json.",
              "", f"Same held-out log-loss for every fit in both runs (same seeds, same "
              f"device kind): {'yes' if same else 'no'}.", "",
              f"## Compare table (`bayesirt compare`, {compare_wall:.0f} s, run with "
              f"{runs[-1]['workers']} worker(s))", "", text_table(result).rstrip(), ""]
    for group in result["groups"]:
        lines += ["### Seed-to-seed spread (mean +- sd over seeds 0, 1, 2)", "",
                  "| variant | converged | elpd_loo | held-out log-loss | held-out AUC | "
                  "R-hat max |", "|---|---|---|---|---|---|"]
        for s in group["seed_spread"]:
            m = s["metrics"]

            def cell(key: str, digits: int, m=m) -> str:
                if key not in m:
                    return "-"
                return f"{m[key]['mean']:.{digits}f} +- {m[key]['sd']:.{digits}f}"

            lines.append(f"| {s['label']} | {s['n_converged']}/{len(s['seeds'])} | "
                         f"{cell('elpd', 1)} | {cell('log_loss', 4)} | {cell('auc', 4)} | "
                         f"{cell('rhat_max', 3)} |")
        lines.append("")
    lines += ["Screenshot of the page: `bench/results/batch_compare.png`.", ""]
    Path(args.out).write_text("\n".join(lines))
    print(f"written {args.out} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
