#!/usr/bin/env bash
# The GPU record in one prepared script, for a session that is lent a GPU (none was lent to
# the session that wrote it). Fits in one `run` call: at most ~9.5 minutes of wall time
# (330 s + 200 s of timeouts plus start-up), inside the 15 minutes of device time a task gets.
#
#   run: bash bench/gpu_run.sh            (timeout_s 600)
#
# Needs: a Python with bayesirt and jax[cuda] installed (PYTHON, default .venv/bin/python;
# the device machine cannot reach a package index, so carry or pre-build it), and for the full
# fit the real-multibench data (DATA, default ../shared/data/real-multibench; skipped if
# absent). Results land in $OUT (the run tool's folder; default /tmp/bayesirt-gpu): the
# fit_dev JSON record and log, the scale JSON and log, nvidia-smi's line. Posterior files go
# to /tmp (too big to come back).
set -u
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-/tmp/bayesirt-gpu}
DATA=${DATA:-../shared/data/real-multibench}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import jax; print(jax.__version__, jax.devices())" 2>&1; } | tee "$OUT/gpu.txt"

# 1. The full real-multibench fit on the GPU (4 chains x 1,000 warm-up + 1,000 draws; the
#    CPU took 69 min). fit_dev appends its JSON record only when the fit ends: the log's
#    progress bar gives the speed if the timeout cuts it.
if [ -d "$DATA" ]; then
  timeout 330 "$PY" bench/fit_dev.py "$DATA" --device gpu --chains 4 --warmup 1000 \
    --draws 1000 --out /tmp/bayesirt-gpu-full.nc --results "$OUT/fit_dev_gpu.md" \
    > "$OUT/fit_dev_gpu.log" 2>&1
  echo "fit_dev exit $?" | tee -a "$OUT/gpu.txt"
else
  echo "fit_dev skipped: $DATA not found" | tee -a "$OUT/gpu.txt"
fi

# 2. The scale bench up to the Open-LLM-Leaderboard shape (5,000 x 30,000, 6 benchmarks,
#    70% density: 105M observations, ~6 GB at ~55 bytes per observation), gradient only
#    above 1.1M observations; one short NUTS run (steps per draw) at the two smallest sizes.
timeout 200 "$PY" bench/scale.py --device gpu \
  --sizes 500x3000,1000x6000,2000x12000,5000x30000 --nuts-max-obs 1100000 \
  --nuts-warmup 200 --nuts-draws 100 --min-seconds 2 --json "$OUT/scale_gpu.json" \
  > "$OUT/scale_gpu.log" 2>&1
echo "scale exit $?" | tee -a "$OUT/gpu.txt"
