"""Resident memory of a dev-set fit over time (bench/results/blocks.md, "Memory").

Usage: ``python bench/blocks_memory.py WARMUP DRAWS RSS_LOG {blocks,pointwise}``; writes
"seconds resident-MB" lines to RSS_LOG every 5 s (2 chains, parallel, on the CPU).
"""

import os
import sys
import threading
import time

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import jax  # noqa: E402

from bayesirt import data as _data  # noqa: E402
from bayesirt.inference import FitConfig, fit  # noqa: E402

log = open(sys.argv[3], "w")  # noqa: SIM115 (written by a thread until exit)
t0 = time.perf_counter()


def rss() -> None:
    """Append the process's resident MB every 5 s."""
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                log.write(f"{time.perf_counter() - t0:.0f} {int(line.split()[1]) // 1024}\n")
                log.flush()
        time.sleep(5)


threading.Thread(target=rss, daemon=True).start()
irt = _data.load(os.path.join(os.path.dirname(__file__), "../../shared/data/real-multibench"))
fit(jax.random.key(0), irt, FitConfig(chains=2, warmup=int(sys.argv[1]), draws=int(sys.argv[2]),
                                      progress=True, dense_blocks=sys.argv[4] == "blocks"))
log.write(f"end {time.perf_counter() - t0:.0f}\n")
