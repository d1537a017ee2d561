"""Time and measure memory of ``bayesirt.data.load`` on the full real-multibench data set.

Usage::

    .venv/bin/python bench/data_load.py [DATA_ROOT] [--repeat N] [--out FILE.md]

Pins itself to one CPU core, loads the data set once in a fresh interpreter (wall time and
peak RSS of that child) and N times in this process, and prints a markdown table: first load,
best and median of the rest, and peak RSS (high-water marks from ``resource.getrusage``, so
they include the interpreter, numpy and pandas; the RSS after imports is printed too, to show
what the loader itself adds).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-multibench"


def rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        # One core: the target is "< 10 s on one core", and the machine is shared.
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import numpy as np
    import pandas as pd

    from bayesirt import data as bd

    # One load in a fresh interpreter: wall time includes the imports; its peak RSS is the
    # honest "memory needed to load" number (no earlier loads' freed-but-held pages).
    child = (
        "import time; t = time.perf_counter(); from bayesirt import data; "
        f"data.load({args.data!r}); print(time.perf_counter() - t)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", child], check=True, capture_output=True,
                         text=True)
    fresh_wall = time.perf_counter() - start
    fresh_inner = float(out.stdout.strip())
    fresh_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    rss_imports = rss_mib()
    times = []
    for _ in range(max(args.repeat, 1)):
        start = time.perf_counter()
        d = bd.load(args.data)
        times.append(time.perf_counter() - start)
    rss_peak = rss_mib()
    rest = times[1:] or times
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = (line.split(":", 1)[1] for line in fh if line.startswith("model name"))
            cpu = next(names).strip()
    except (OSError, StopIteration):
        pass
    rows = [
        ("data set", f"`{args.data}`"),
        ("size", f"{d.n_obs:,} training responses, {d.n_test:,} test pairs, "
                 f"{d.n_models} models, {d.n_items:,} items ({d.n_train_items:,} train), "
                 f"embeddings {None if d.item_embeddings is None else d.item_embeddings.shape}"),
        ("fresh process: imports + one load (s)", f"{fresh_inner:.2f} "
                                                  f"({fresh_wall:.2f} with interpreter start)"),
        ("fresh process: peak RSS (MiB)", f"{fresh_rss:.0f}"),
        ("in-process first load (s)", f"{times[0]:.2f}"),
        (f"best of next {len(rest)} (s)", f"{min(rest):.2f}"),
        (f"median of next {len(rest)} (s)", f"{statistics.median(rest):.2f}"),
        (f"in-process peak RSS after {len(times)} loads (MiB)", f"{rss_peak:.0f}"),
        ("RSS after imports (MiB)", f"{rss_imports:.0f}"),
        ("machine", f"{cpu}; {os.cpu_count()} CPUs on the machine, pinned to 1 core; "
                    f"{platform.system()} {platform.release()}"),
        ("software", f"Python {platform.python_version()}, numpy {np.__version__}, "
                     f"pandas {pd.__version__}"),
        ("targets", "< 10 s on one core, peak memory < 2 GB"),
    ]
    lines = ["# bayesirt.data.load on real-multibench", "",
             "Produced by `bench/data_load.py`.", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
