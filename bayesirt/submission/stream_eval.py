"""``bayesirt evaluate ZIP DATA --protocol streaming``: replay the live platform locally.

Leave-one-benchmark-out on any data folder: for each held-out benchmark, every seed and
split scope, one run (:mod:`.coordinator`) scores the submission and the two baselines at
the checkpoints 0, 1, 3, 7, 15, 31 on the same labels (bought by the submission's hook, or
the platform's random rule). The posterior in a bayesirt ZIP must not know the held-out
benchmark: its benchmarks are read from the artifact and a run that would score a benchmark
it was fitted on is refused. The organisers' archive checks run on the ZIP first.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayesirt.errors import InputError
from bayesirt.submission.archive import archive_problems
from bayesirt.submission.coordinator import (
    StreamingFailure,
    Workers,
    make_run,
    play,
    python_default,
    subject_dicts,
)
from bayesirt.submission.heldout import SCOPES, make_task
from bayesirt.submission.safe_zip import DEFAULT_MAX_BYTES, safe_extract

SUBMISSION = "bayesirt"

_EMPIRICAL = '''"""The organisers' empirical mean: 0.5, then the pair's label mean."""


def predict(input, labeled):
    subject, item = input
    ys = [y for (s, i), y in labeled or []
          if s.get("normalized_name") == subject.get("normalized_name")
          and i.get("benchmark_id") == item.get("benchmark_id")]
    return 0.5 if not ys else sum(ys) / len(ys)
'''

_SMOOTHED = '''"""Beta-smoothed pair mean: 2 pseudo-counts at the subject's training accuracy."""
import json
import os

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "prior.json")) as fh:
    PRIOR = json.load(fh)


def predict(input, labeled):
    subject, item = input
    name = subject.get("normalized_name")
    ys = [y for (s, i), y in labeled or []
          if s.get("normalized_name") == name and i.get("benchmark_id") == item.get("benchmark_id")]
    return (sum(ys) + 2.0 * PRIOR.get(name, 0.5)) / (len(ys) + 2.0)
'''


def _posterior_benchmarks(sub: Path) -> tuple[list[str] | None, dict | None]:
    """Benchmarks the ZIP's posterior was fitted on (None for a foreign ZIP), manifest."""
    man_path = sub / "manifest.json"
    if not man_path.is_file():
        return None, None
    manifest = json.loads(man_path.read_text(encoding="utf-8"))
    art = sub / str(manifest.get("artifact", "posterior_flat.nc"))
    if not art.is_file():
        return None, manifest
    from bayesirt.predictive import load_flat

    return list(load_flat(art).benchmark_ids), manifest


def evaluate_streaming(zip_path: str | Path, data_dir: str | Path, out_dir: str | Path, *,
                       benchmarks: Sequence[str] | None = None, pairs: int = 12,
                       seeds: Sequence[int] = (0, 1, 2), scopes: Sequence[str] = ("pair",),
                       workers: int = 2, python: str | None = None,
                       per_call_timeout: float = 30.0, min_items: int = 80,
                       max_bytes: int = DEFAULT_MAX_BYTES,
                       echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Replay the streaming platform on a data folder, leave one benchmark out.

    Parameters
    ----------
    zip_path : path-like
        A streaming submission (``model.py`` with ``predict(input, labeled)``; optional
        ``labeling.py``).
    data_dir : path-like
        A data root (``train/``; ``reference/ground_truth.csv`` and item texts when present).
    out_dir : path-like
        Where ``streaming.md``, ``streaming_curves.png`` and ``records.jsonl`` go.
    benchmarks : sequence of str, optional
        Benchmarks to hold out (default: every benchmark the ZIP's posterior does not know;
        all of them for a foreign ZIP).
    pairs : int
        Pairs per run (the platform: 5 to 12).
    seeds : sequence of int
        One run per seed (pair choice, split, candidate order).
    scopes : sequence of {"pair", "item"}
    workers : int
        Evaluation processes at once.
    python : str, optional
        Interpreter of the submission's processes (default: this one; pandas, jax and
        bayesirt are blocked inside them).
    per_call_timeout : float
        Seconds a call may take before the run fails with exit 41.
    min_items : int
    max_bytes : int
    echo : callable

    Returns
    -------
    dict
        ``records``, ``table`` (markdown), ``timing``, ``archive`` (problems: none), paths.

    Raises
    ------
    InputError
        Archive problems, an unknown benchmark, or one the posterior was fitted on.
    StreamingFailure
        The submission failed a call (exit 40 / 41 / 42), in one line.
    """
    from bayesirt import data as _data
    from bayesirt.submission.heldout_report import plot_curves, table
    from bayesirt.submission.heldout_run import _train_accuracy, benchmark_responses

    zip_path, root, out = Path(zip_path), Path(data_dir), Path(out_dir)
    for scope in scopes:
        if scope not in SCOPES:
            raise InputError(f"--split-scope must be one of {SCOPES}, got {scope!r}")
    problems = archive_problems(zip_path)
    if problems:
        raise InputError("the ZIP fails the platform's archive checks: " + "; ".join(problems))
    data = _data.load(root)
    texts = _data.read_item_texts(root)
    subjects = subject_dicts(data)
    python = python or python_default()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bayesirt-streaming-") as tmp_s:
        tmp = Path(tmp_s)
        sub = safe_extract(zip_path, tmp / "submission", max_bytes=max_bytes)
        known, manifest = _posterior_benchmarks(sub)
        todo = list(benchmarks or [b for b in data.benchmark_ids if b not in (known or [])])
        for b in todo:
            if b not in data.benchmark_ids:
                raise InputError(f"{root}: no benchmark {b!r} (has {list(data.benchmark_ids)})")
            if known is not None and b in known:
                raise InputError(
                    f"{zip_path}: its posterior was fitted on {b!r}, so holding {b!r} out would "
                    f"score data it has seen; bundle a fit without it (`bayesirt heldout "
                    f"{root} --out DIR --benchmarks {b}` writes DIR/fits/without-{b}.nc) or "
                    "hold out another benchmark")
        if not todo:
            raise InputError(f"{zip_path}: its posterior knows every benchmark of {root}; "
                             "nothing to hold out")
        emp = tmp / "empirical_mean"
        emp.mkdir()
        (emp / "model.py").write_text(_EMPIRICAL)
        records: list[dict] = []
        sub_workers = Workers(sub, python, workers=workers, per_call_timeout=per_call_timeout)
        try:
            for b in todo:
                smo = tmp / f"smoothed_mean_{todo.index(b)}"
                smo.mkdir()
                (smo / "model.py").write_text(_SMOOTHED)
                (smo / "prior.json").write_text(json.dumps(
                    _train_accuracy(_data.without_benchmark(data, b))))
                subs = {SUBMISSION: sub_workers,
                        "empirical_mean": Workers(emp, python, workers=1),
                        "smoothed_mean": Workers(smo, python, workers=1)}
                m, i, y = benchmark_responses(data, root, b)
                try:
                    for scope in scopes:
                        for seed in seeds:
                            task = make_task(m, i, y, b, scope=scope, seed=int(seed),
                                             min_items=min_items)
                            run = make_run(task, subjects, texts, pairs)
                            recs, _ = play(run, subs, SUBMISSION, echo=echo)
                            records += recs
                finally:
                    for name in ("empirical_mean", "smoothed_mean"):
                        subs[name].close()
        finally:
            sub_workers.close()
        timing = {"first_call_s_max": float(max(sub_workers.first_call_seconds, default=0)),
                  "first_call_s_median": float(np.median(sub_workers.first_call_seconds))
                  if sub_workers.first_call_seconds else 0.0,
                  "call_ms_median": 1000 * float(np.median(sub_workers.call_seconds))
                  if sub_workers.call_seconds else 0.0,
                  "wall_s": time.perf_counter() - t_start}
    md = _report(records, timing, manifest, table)
    paths = {"table_path": out / "streaming.md", "records_path": out / "records.jsonl",
             "plot_path": out / "streaming_curves.png"}
    # Only now: a refused or failed run leaves no half-filled folder behind.
    out.mkdir(parents=True, exist_ok=True)
    paths["table_path"].write_text(md)
    with open(paths["records_path"], "w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    plot_curves(records, paths["plot_path"])
    return {"records": records, "table": md, "timing": timing, **paths}


def _report(records: list[dict], timing: dict, manifest: dict | None,
            table: Callable[[list[dict]], str]) -> str:
    lines = [table(records), "### calibration (ECE, 10 bins) at 0 / 1 / 31 labels", "",
             "| held out | scope | " + " | ".join(p for p in (SUBMISSION, "empirical_mean",
                                                              "smoothed_mean")) + " |",
             "|---|---|---|---|---|"]
    keys = sorted({(r["benchmark"], r["scope"]) for r in records})
    for b, scope in keys:
        cells = []
        for p in (SUBMISSION, "empirical_mean", "smoothed_mean"):
            vals = [np.mean([r["ece"] for r in records if (r["benchmark"], r["scope"],
                                                           r["predictor"], r["budget"])
                             == (b, scope, p, k)]) for k in (0, 1, 31)]
            cells.append(" / ".join(f"{v:.3f}" for v in vals))
        lines.append(f"| {b} | {scope} | " + " | ".join(cells) + " |")
    lines += ["", f"Submission calls: first call of a worker (conditioning) median "
              f"{timing['first_call_s_median']:.2f} s, max {timing['first_call_s_max']:.2f} s; "
              f"later calls median {timing['call_ms_median']:.3f} ms; wall "
              f"{timing['wall_s']:.0f} s."]
    if manifest:
        lines.append(f"ZIP: bayesirt {manifest.get('bayesirt_version')}, model "
                     f"{manifest.get('model_name')}, acquisition {manifest.get('acquisition')}, "
                     f"{manifest.get('n_draws')} draws.")
    return "\n".join(lines) + "\n"


__all__ = ["SUBMISSION", "StreamingFailure", "evaluate_streaming"]
