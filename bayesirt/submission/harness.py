"""Local evaluation of a submission ZIP, played out the way the competition platform does.

``evaluate`` unpacks the ZIP with :func:`safe_extract` into a temporary folder, runs
``runner.py`` (stdlib + numpy only) under the chosen interpreter in a child process with a
wall-clock limit -- confined by bubblewrap where it works (:mod:`.sandbox`) -- then validates
what ``predict`` returned and scores the unrevealed test pairs beside three empirical
baselines computed on the same split.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bayesirt.errors import InputError
from bayesirt.submission import sandbox as sbx
from bayesirt.submission import scoring
from bayesirt.submission.report import BASELINE_NAMES, SYSTEM_NAME, EvaluationReport, RunResult
from bayesirt.submission.safe_zip import DEFAULT_MAX_BYTES, safe_extract

#: Top-level packages the competition container does not promise. The runner blocks their
#: import (``strict_imports=True``) so that a submission relying on them fails here, not there.
NOT_IN_CONTAINER = (
    "bayesirt", "jax", "jaxlib", "numpyro", "arviz", "arviz_base", "arviz_stats",
    "arviz_plots", "xarray", "netCDF4", "h5py", "h5netcdf",
)
POLICIES = ("adaptive", "random", "both")
_BLAS_ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "BLIS_", "GOTO_", "NVPL_", "VECLIB_")


class SubmissionWarning(UserWarning):
    """Something the platform tolerates but reports, e.g. probabilities clipped into [0, 1]."""


class SubmissionError(RuntimeError):
    """The submission failed inside the sandbox or returned invalid predictions."""


def _runs_for(budgets: Sequence[float], policy: str) -> list[dict]:
    if policy not in POLICIES:
        raise InputError(f"policy must be one of {POLICIES}, got {policy!r}")
    bs = []
    for b in budgets:
        try:
            fb = float(b)
        except (TypeError, ValueError):
            raise InputError(f"budget {b!r} is not a number") from None
        if not (0.0 <= fb <= 1.0) or not math.isfinite(fb):
            raise InputError(f"budget {b!r} must be a fraction of test pairs in [0, 1]")
        if fb not in bs:
            bs.append(fb)
    if not bs:
        raise InputError("budgets is empty; give at least one, e.g. (0, 0.05)")
    pols = ("adaptive", "random") if policy == "both" else (policy,)
    runs = [{"policy": "none", "budget": 0.0}] if 0.0 in bs else []
    for b in sorted(x for x in bs if x > 0):
        runs += [{"policy": p, "budget": b} for p in pols]
    return runs


def _child_env(tmp: Path | str) -> dict[str, str]:
    """Build a clean environment: no PYTHONPATH; HOME and TMPDIR inside the temp dir."""
    tmp = str(tmp)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tmp,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # BLAS settings (thread caps, OPENBLAS_CORETYPE) describe the machine, not the Python
    # environment: keep them, or the child's BLAS picks other kernels and rounds differently
    # from the package run in this process.
    for k, v in os.environ.items():
        if k.startswith(_BLAS_ENV_PREFIXES):
            env[k] = v
    return env


def _tail(path: Path, n: int = 3000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return text[-n:]


def _align(out: dict, pair_pos: dict[tuple[str, str], int], n: int, where: str):
    """Map predict()'s rows onto test_pairs order; clip out-of-range values with a warning."""
    mids, iids = out["model_id"], out["item_id"]
    p_raw = np.asarray(out["p"], dtype=np.float64)
    seen = np.zeros(n, dtype=bool)
    p = np.full(n, np.nan)
    for r, key in enumerate(zip(mids, iids, strict=True)):
        j = pair_pos.get(key)
        if j is None:
            raise SubmissionError(f"{where}: predict returned pair {key} (row {r}) that is not "
                                  "in test_pairs.csv")
        if seen[j]:
            raise SubmissionError(f"{where}: predict returned pair {key} twice (row {r})")
        seen[j] = True
        p[j] = p_raw[r]
    if not seen.all():
        j = int(np.flatnonzero(~seen)[0])
        key = next(k for k, v in pair_pos.items() if v == j)
        raise SubmissionError(f"{where}: predict returned {int(seen.sum())} of {n} test pairs; "
                              f"missing e.g. {key}")
    if not np.isfinite(p).all():
        j = int(np.flatnonzero(~np.isfinite(p))[0])
        key = next(k for k, v in pair_pos.items() if v == j)
        raise SubmissionError(f"{where}: predict returned a non-finite probability {p[j]!r} for "
                              f"{key}")
    out_of_range = (p < 0.0) | (p > 1.0)
    n_clip = int(out_of_range.sum())
    msg = None
    if n_clip:
        msg = (f"{where}: {n_clip} probabilities outside [0, 1] were clipped (as the platform "
               "does)")
        warnings.warn(msg, SubmissionWarning, stacklevel=3)
        p = np.clip(p, 0.0, 1.0)
    return p, n_clip, msg


def _write_predictions(folder: Path, spec: dict, t_models, t_items, out: dict, pair_pos,
                       revealed: np.ndarray, y: np.ndarray) -> Path:
    """Write one run's raw predictions in test_pairs order (floats round-trip exactly)."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    raw = np.empty(len(t_models))
    for key, p in zip(zip(out["model_id"], out["item_id"], strict=True), out["p"], strict=True):
        raw[pair_pos[key]] = p
    path = folder / f"{spec['policy']}_{spec['budget']:g}.csv"
    pd.DataFrame({
        "model_id": t_models, "item_id": t_items, "predicted_probability": raw,
        "revealed": revealed.astype(np.int8), "label": y,
    }).to_csv(path, index=False, float_format="%.17g")
    return path


def _metrics_by_system(y, preds: dict[str, np.ndarray], mask, bench, bench_ids):
    overall = {name: scoring.all_metrics(y[mask], p[mask]) for name, p in preds.items()}
    per = {}
    for k, b in enumerate(bench_ids):
        sel = mask & (bench == k)
        if sel.any():
            per[b] = {name: scoring.all_metrics(y[sel], p[sel]) for name, p in preds.items()}
    return overall, per


def evaluate(
    zip_path: str | Path,
    data_dir: str | Path,
    *,
    budgets: Sequence[float] = (0, 0.02, 0.05, 0.10),
    policy: str = "both",
    python: str | Path | None = None,
    time_limit: float = 3600,
    json_out: str | Path | None = None,
    seed: int = 0,
    strict_imports: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    predictions_dir: str | Path | None = None,
    verbose: bool = False,
    sandbox: str = "auto",
) -> EvaluationReport:
    """Run a submission ZIP like the platform and score it against baselines.

    Parameters
    ----------
    zip_path : str or Path
        The submission (``model.py`` at its root; ``labeling.py`` for the adaptive policy).
    data_dir : str or Path
        A folder with ``train/``, ``test/`` and ``reference/ground_truth.csv``.
    budgets : sequence of float, optional
        Fractions of the test pairs to reveal; ``ceil(budget * n)`` pairs each.
    policy : {"adaptive", "random", "both"}, optional
        How the revealed pairs are chosen: ``labeling.score_pairs``'s top scores, or
        ``numpy.random.default_rng(seed).choice``.
    python : str or Path, optional
        Interpreter that runs the submission (default: this one). It needs numpy; the
        submission may need scipy and pandas.
    time_limit : float, optional
        Wall-clock seconds for the child (train + all runs).
    json_out : str or Path, optional
        Where to write the report as JSON.
    seed : int, optional
        Seed of the random policy.
    strict_imports : bool, optional
        Block, inside the child, the packages the container does not promise
        (:data:`NOT_IN_CONTAINER`, bayesirt included).
    max_bytes : int, optional
        Bound on the ZIP's uncompressed size.
    predictions_dir : str or Path, optional
        Write each run's predictions there as ``<policy>_<budget>.csv`` (model_id, item_id,
        predicted_probability as returned, before clipping; revealed 0/1; label), rows in
        test_pairs.csv order.
    verbose : bool, optional
        Pass the child's stderr (the runner's progress lines) through to this process's
        stderr as it runs; otherwise it is kept and shown only on failure.
    sandbox : {"auto", "require", "off"}, optional
        Confine the child with bubblewrap (:mod:`bayesirt.submission.sandbox`): read-only
        system, the submission folder read-only, writable only the output folder and a fresh
        ``/tmp``, no network. ``auto`` uses it when its probe passes and otherwise prints one
        line to stderr saying the submission runs WITHOUT isolation; ``require`` raises
        instead; ``off`` never uses it (and prints that line). The report's ``sandbox`` and
        ``isolation`` say which applied.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    FileNotFoundError
        If the ZIP, the interpreter or a data file is missing.
    ValueError
        On a bad budget/policy/time limit/sandbox, or an unsafe ZIP (``UnsafeArchiveError``).
    SandboxUnavailableError
        If ``sandbox="require"`` and bubblewrap is missing or does not work here (an
        ``InputError``, so a ``ValueError`` too).
    SubmissionError
        If the submission fails in the child (the message names the stage, the error and
        what to do), runs past ``time_limit``, or returns invalid predictions.
    """
    from bayesirt import data as bdata

    t_start = time.perf_counter()
    runs = _runs_for(budgets, policy)
    if not (isinstance(time_limit, int | float) and time_limit > 0):
        raise InputError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    box = sbx.select(sandbox)  # a bad mode, or "require" without bwrap: before any work
    zip_path = Path(zip_path)
    data_dir = Path(data_dir)
    train_dir, test_dir = data_dir / "train", data_dir / "test"
    gt_path = data_dir / "reference" / "ground_truth.csv"
    expected = ((train_dir, "train/"), (test_dir, "test/"), (gt_path, "reference/ground_truth.csv"))
    for p, what in expected:
        if not p.exists():
            raise FileNotFoundError(f"{data_dir} lacks {what} (expected the competition layout: "
                                    "train/, test/, reference/ground_truth.csv)")
    python = str(python) if python is not None else sys.executable
    if shutil.which(python) is None and not Path(python).is_file():
        raise FileNotFoundError(f"python interpreter not found: {python}")

    data = bdata.load(train_dir, test_dir)
    if data.test_model_idx is None or data.test_item_idx is None:
        raise InputError(f"{test_dir}: no test_pairs.csv was read")
    n = int(data.test_model_idx.shape[0])
    t_models = np.asarray(data.model_ids, dtype=object)[data.test_model_idx]
    t_items = np.asarray(data.item_ids, dtype=object)[data.test_item_idx]
    pair_pos = {(m, i): j for j, (m, i) in enumerate(zip(t_models, t_items, strict=True))}
    if len(pair_pos) != n:
        raise InputError(f"{test_dir / 'test_pairs.csv'} holds duplicate (model_id, item_id) rows")
    gm, gi, gy = bdata.read_labeled_pairs(gt_path)
    y = np.full(n, -1, dtype=np.int64)
    for r, key in enumerate(zip(gm.tolist(), gi.tolist(), strict=True)):
        j = pair_pos.get(key)
        if j is None:
            raise InputError(f"{gt_path}: row {r + 2} pair {key} is not in test_pairs.csv")
        y[j] = int(gy[r])
    if (y < 0).any():
        j = int(np.flatnonzero(y < 0)[0])
        raise InputError(f"{gt_path} has no label for test pair {(t_models[j], t_items[j])}")
    t_bench = data.item_benchmark[data.test_item_idx]
    fit_model = data.model_idx.astype(np.int64)
    fit_bench = data.item_benchmark[data.item_idx].astype(np.int64)
    fit_y = data.response.astype(np.int64)

    collected: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bayesirt-eval-") as tmp_s:
        tmp = Path(tmp_s)
        sub = safe_extract(zip_path, tmp / "submission", max_bytes=max_bytes)
        manifest = None
        if (sub / "manifest.json").is_file():
            manifest = json.loads((sub / "manifest.json").read_text(encoding="utf-8"))
        runner_dir = tmp / "runner"
        runner_dir.mkdir()
        # A copy outside the package, so the child never sees bayesirt's folder on sys.path.
        shutil.copyfile(Path(__file__).with_name("runner.py"), runner_dir / "runner.py")
        out_dir = tmp / "out"
        out_dir.mkdir()
        job = {
            "submission_dir": str(sub),
            "train_dir": str(train_dir.resolve()),
            "test_dir": str(test_dir.resolve()),
            "ground_truth": str(gt_path.resolve()),
            "runs": runs,
            "seed": int(seed),
            "out_dir": str(out_dir),
            "block_imports": list(NOT_IN_CONTAINER) if strict_imports else [],
        }
        job_path = runner_dir / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        log_path = tmp / "runner.log"
        env = _child_env(box.tmp_dir or tmp)
        exe, read_only = python, []
        if box.isolated:
            # The interpreter may live under a folder the sandbox hides (a venv in /tmp, pyenv
            # under /root): bind back what it needs, and the data, read-only.
            exe, read_only = sbx.interpreter_paths(python, env)
            read_only += [sub, runner_dir, job["train_dir"], job["test_dir"], job["ground_truth"]]
        cmd = box.command([exe, "-I", str(runner_dir / "runner.py"), str(job_path)], cwd=sub,
                          env=env, read_only=read_only, writable=[out_dir])
        if not box.isolated:
            print(box.warning_line(), file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        with open(log_path, "w", encoding="utf-8") as log:
            try:
                # Killing bwrap on the time limit takes its PID namespace, so every process
                # the submission started, with it (--die-with-parent covers our own death).
                proc = subprocess.run(
                    cmd,
                    # verbose: the runner's progress lines (stderr) appear as they happen.
                    cwd=sub, env=env, stdout=log, stdin=subprocess.DEVNULL,
                    stderr=None if verbose else subprocess.STDOUT,
                    timeout=time_limit, check=False,
                )
            except subprocess.TimeoutExpired:
                raise SubmissionError(
                    f"the submission ran past the time limit of {time_limit:g} s (train + "
                    f"{len(runs)} score/predict runs on {n:,} test pairs); speed it up (e.g. "
                    "`bayesirt bundle --draws` fewer) or raise --time-limit.\nlast output:\n"
                    + _tail(log_path)
                ) from None
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            hint = ""
            if box.isolated:
                hint = ("\n(it ran in the bwrap sandbox: files read-only except a fresh "
                        "$TMPDIR=/tmp, /home /root /run /tmp hidden, no network; to run code "
                        "you trust unconfined: sandbox 'off')")
            err_file = out_dir / "error.json"
            if err_file.is_file():
                err = json.loads(err_file.read_text(encoding="utf-8"))
                raise SubmissionError(
                    f"the submission failed in {err['stage']}: {err['type']}: {err['message']}"
                    f"\n{err['traceback']}{hint}"
                )
            raise SubmissionError(
                f"the submission's process exited with status {proc.returncode} under {python}"
                f"{' in the bwrap sandbox' if box.isolated else ''}; output:\n"
                f"{_tail(log_path)}{hint}"
            )
        summary = json.loads((out_dir / "result.json").read_text(encoding="utf-8"))

        results = []
        for spec in summary["runs"]:
            where = f"policy={spec['policy']} budget={spec['budget']:g}"
            out = json.loads((out_dir / spec["file"]).read_text(encoding="utf-8"))
            p, n_clip, msg = _align(out, pair_pos, n, where)
            if msg:
                collected.append(msg)
            revealed = np.asarray(out["revealed"], dtype=np.int64)
            mask = np.ones(n, dtype=bool)
            mask[revealed] = False
            if predictions_dir is not None:
                _write_predictions(Path(predictions_dir), spec, t_models, t_items, out,
                                   pair_pos, ~mask, y)
            # Baselines learn from the same labels the submission was given.
            base = scoring.baselines(
                np.r_[fit_model, data.test_model_idx[revealed]],
                np.r_[fit_bench, t_bench[revealed]],
                np.r_[fit_y, y[revealed]],
                data.test_model_idx, t_bench, data.n_models, data.n_benchmarks,
            )
            preds = {SYSTEM_NAME: p, **{BASELINE_NAMES[k]: v for k, v in base.items()}}
            overall, per = _metrics_by_system(y, preds, mask, t_bench, data.benchmark_ids)
            results.append(RunResult(
                policy=spec["policy"], budget=float(spec["budget"]),
                n_revealed=int(revealed.size), n_scored=int(mask.sum()), metrics=overall,
                per_benchmark=per, timings={k: float(v) for k, v in spec["timings"].items()},
                n_clipped=n_clip,
            ))

    report = EvaluationReport(
        zip_path=str(zip_path), data_dir=str(data_dir), python=python,
        python_version=summary["python"], n_test_pairs=n,
        train_seconds=float(summary["train_seconds"]), wall_seconds=wall,
        runs=tuple(results), manifest=manifest, warnings=tuple(collected),
        foreign_modules=tuple(summary.get("modules", ())),
        sandbox=box.kind, isolation=box.describe(),
    )
    if json_out is not None:
        d = report.to_dict()
        d["evaluate_seconds"] = time.perf_counter() - t_start
        Path(json_out).write_text(json.dumps(d, indent=2, allow_nan=True), encoding="utf-8")
    return report
