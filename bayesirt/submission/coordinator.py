"""Local replay of the organisers' streaming platform (``streaming_alc_v1``) for one run.

What the platform does (``../shared/docs/streaming.md``) and how it is replayed here:

* a run holds up to ``n_pairs`` (subject, benchmark) pairs of one held-out benchmark with
  >= 80 distinct items (drawn by the seed), each pair's items split 50/50 into an
  acquisition pool (in a fixed random order: the candidates' order) and an evaluation pool
  (:func:`bayesirt.submission.heldout.make_task`; per pair or per benchmark item); at most
  :data:`MAX_TARGETS` evaluation targets (each pair's pool cut to an equal share);
* budget-major checkpoints 0, 1, 3, 7, 15, 31: at each, every evaluation target is predicted
  with ONE shared ``labeled`` list, in freshly started worker processes (``workers`` at once,
  the deduplicated targets split between them); then acquisition walks each pair's
  candidates until the pair holds the next budget: the hook decides per candidate (a
  skipped candidate is gone), or without ``labeling.py`` the platform's random rule, or a
  one-argument hook ranks the remaining candidates and the top ones are revealed;
* subjects and items are dicts with the platform's field names built from the data files
  (``normalized_name`` = model id, ``provider`` = organisation, ``release_date``;
  ``item_content`` = item text, ``item_features`` = its category as JSON, an anonymous
  ``benchmark_id``);
* every returned value is validated in the worker (exit 40 raised, 41 past the per-call
  limit, 42 invalid value) and a failure ends the run with one line naming it.

Baselines go through the same checkpoints and workers as submissions of their own: the
organisers' empirical mean (0.5, then the pair's label mean) and a smoothed mean (Beta with
2 pseudo-counts towards the subject's training accuracy).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bayesirt.errors import InputError
from bayesirt.submission.heldout import BUDGETS, HeldOutTask

#: Most evaluation targets in one run (the platform's bound).
MAX_TARGETS = 1000
#: Labels a pair may buy (the platform's ``max_labels``).
MAX_LABELS = 31
#: Packages the container does not promise; blocked inside the workers.
BLOCKED = ("bayesirt", "jax", "jaxlib", "numpyro", "arviz", "arviz_base", "arviz_stats",
           "arviz_plots", "xarray", "netCDF4", "h5py", "h5netcdf", "pandas")
EXIT_MEANING = {40: "predict or the hook raised", 41: "a call ran past the per-call limit",
                42: "an invalid value was returned"}


class StreamingFailure(RuntimeError):
    """The submission failed as the platform would fail it (exit code 40 / 41 / 42)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(f"exit {code} ({EXIT_MEANING.get(code, 'the worker failed')}): "
                         f"{message}")


def anonymous_benchmark(name: str) -> str:
    """Return a stable anonymous benchmark id, as the platform shows (``"b"`` + 10 hex)."""
    return "b" + hashlib.sha256(f"bayesirt-stream:{name}".encode()).hexdigest()[:10]


def _date_text(year: float) -> str:
    """Turn a fractional year back into ``YYYY-MM-DD`` (the platform's subjects carry strings)."""
    if not math.isfinite(year):
        return ""
    y = int(math.floor(year))
    length = (_dt.date(y + 1, 1, 1) - _dt.date(y, 1, 1)).days
    return (_dt.date(y, 1, 1) + _dt.timedelta(days=int(round((year - y) * length)))).isoformat()


def subject_dicts(data: Any) -> dict[str, dict[str, str]]:
    """Model id -> the platform's subject dict (every field a string, "" where unknown)."""
    out = {}
    for j, m in enumerate(data.model_ids):
        org = data.model_org[j] if data.model_org is not None else ""
        year = (float(data.model_release_year[j]) if data.model_release_year is not None
                else math.nan)
        out[m] = {"normalized_name": m, "provider": org or "", "release_date": _date_text(year),
                  "access_date": "", "harness": "", "harness_version": "",
                  "reasoning_effort": "", "subject_features_extra": ""}
    return out


def item_dict(item_id: str, texts: Mapping[str, tuple[str, str]], benchmark: str) -> dict:
    """Return the platform's item dict of one of our items."""
    text, cat = texts.get(item_id, ("", ""))
    return {"item_content": text or item_id,
            "item_features": json.dumps({"category": cat}) if cat else "",
            "interactors": "", "benchmark_id": anonymous_benchmark(benchmark)}


@dataclass(frozen=True)
class StreamRun:
    """One run: the pairs with their pools, as dicts the submission sees.

    Attributes
    ----------
    benchmark, scope : str
    seed : int
    subjects : tuple of dict, (P,)
    acquire : tuple of (list of item dict, ndarray of int8), (P,)
        Candidates in the order they are offered, and their labels.
    evaluate : tuple of (list of item dict, ndarray of int8), (P,)
    model_ids : tuple of str, (P,)
    """

    benchmark: str
    scope: str
    seed: int
    subjects: tuple[dict, ...]
    acquire: tuple[tuple[list, np.ndarray], ...]
    evaluate: tuple[tuple[list, np.ndarray], ...]
    model_ids: tuple[str, ...]


def make_run(task: HeldOutTask, subjects: Mapping[str, dict], texts: Mapping[str, tuple],
             n_pairs: int) -> StreamRun:
    """Pick up to ``n_pairs`` pairs of a split task (by its seed) and build their dicts."""
    if n_pairs < 1:
        raise InputError(f"pairs per run must be >= 1, got {n_pairs}")
    rng = np.random.default_rng([task.seed, 20261201])
    P = len(task.models)
    keep = np.sort(rng.choice(P, size=min(int(n_pairs), P), replace=False))
    share = MAX_TARGETS // keep.size
    subj, acq, ev, mids = [], [], [], []
    for k in keep.tolist():
        model = task.models[k]
        a_items, a_y = task.acquire[k]
        e_items, e_y = task.score[k]
        e_items, e_y = e_items[:share], e_y[:share]
        subj.append(subjects.get(model) or {"normalized_name": model})
        acq.append(([item_dict(str(i), texts, task.benchmark) for i in a_items], a_y))
        ev.append(([item_dict(str(i), texts, task.benchmark) for i in e_items], e_y))
        mids.append(model)
    return StreamRun(task.benchmark, task.scope, task.seed, tuple(subj), tuple(acq), tuple(ev),
                     tuple(mids))


class Workers:
    """Start the worker script of one submission folder under an interpreter.

    Parameters
    ----------
    submission_dir : Path
        The extracted submission (``model.py`` at its root).
    python : str
        Interpreter of the workers.
    workers : int
        Evaluation processes started at once per checkpoint.
    per_call_timeout : float
        Seconds one call may take (0: no limit).
    block : sequence of str
        Top-level packages the workers refuse to import.
    """

    def __init__(self, submission_dir: Path, python: str, *, workers: int = 2,
                 per_call_timeout: float = 30.0, block: Sequence[str] = BLOCKED) -> None:
        self.dir = Path(submission_dir)
        self.python = python
        self.workers = max(1, int(workers))
        self.timeout = float(per_call_timeout)
        self.block = list(block)
        self._tmp = tempfile.TemporaryDirectory(prefix="bayesirt-stream-")
        # A copy outside the package: the child never sees bayesirt's folder on sys.path.
        self.script = Path(self._tmp.name) / "stream_worker.py"
        self.script.write_bytes(Path(__file__).with_name("stream_worker.py").read_bytes())
        self.call_seconds: list[float] = []
        self.first_call_seconds: list[float] = []

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        # One BLAS thread per worker: the platform's workers share the machine too.
        for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[k] = "1"
        return env

    def _cmd(self, mode: str) -> list[str]:
        return [self.python, "-I", str(self.script), str(self.dir), mode]

    def predict(self, inputs: list, labeled: list) -> list[float]:
        """Probabilities of ``inputs`` given ``labeled``, from fresh worker processes."""
        if not inputs:
            return []
        chunks = [c for c in np.array_split(np.arange(len(inputs)), self.workers) if c.size]
        procs = []
        for n, c in enumerate(chunks):
            job = {"inputs": [inputs[j] for j in c.tolist()], "labeled": labeled,
                   "per_call_timeout": self.timeout, "block_imports": self.block}
            # The job through a file: several workers start at once without pipe juggling.
            path = Path(self._tmp.name) / f"job{n}.json"
            path.write_text(json.dumps(job), encoding="utf-8")
            with open(path, encoding="utf-8") as fh:
                p = subprocess.Popen(self._cmd("evaluate"), stdin=fh, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=self.dir, env=self._env(),
                                     text=True)
            procs.append((c, p))
        out = [math.nan] * len(inputs)
        failure = None
        # A worker that hangs outside a call (e.g. at import) is ended too: every call's
        # limit plus two minutes to start.
        budget = (self.timeout or 600.0) * max(c.size for c in chunks) + 120.0
        for c, p in procs:
            try:
                stdout, stderr = p.communicate(timeout=budget)
            except subprocess.TimeoutExpired:
                p.kill()
                stdout, stderr = p.communicate()
                if failure is None:
                    failure = StreamingFailure(41, f"a worker ran past {budget:.0f} s for "
                                                   f"{c.size} calls")
                continue
            res = _last_json(stdout)
            if p.returncode != 0 or res is None or "error" in res:
                if failure is None:
                    code = int(res["error"]) if res and "error" in res else p.returncode
                    msg = res["message"] if res and "message" in res else (stderr or "")[-2000:]
                    failure = StreamingFailure(code, msg)
                continue
            for j, v in zip(c.tolist(), res["probabilities"], strict=True):
                out[j] = float(v)
            secs = res["call_seconds"]
            if secs:
                self.first_call_seconds.append(float(secs[0]))
                self.call_seconds += [float(s) for s in secs[1:]]
        if failure is not None:
            raise failure
        return out

    def acquirer(self) -> Acquirer:
        """Start the long-lived process that answers the hook (the platform's client)."""
        return Acquirer(self)

    def close(self) -> None:
        """Remove the worker script's folder."""
        self._tmp.cleanup()


class Acquirer:
    """One process of a submission answering ``acquisition_function`` calls in order."""

    def __init__(self, workers: Workers) -> None:
        self.p = subprocess.Popen(workers._cmd("acquire"), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  cwd=workers.dir, env=workers._env(), text=True, bufsize=1)
        self._send({"block_imports": workers.block, "per_call_timeout": workers.timeout})
        self.mode = self._read()["mode"]

    def _send(self, obj: dict) -> None:
        try:
            self.p.stdin.write(json.dumps(obj) + "\n")
            self.p.stdin.flush()
        except BrokenPipeError:
            self._raise_exit()

    def _read(self) -> dict:
        line = self.p.stdout.readline()
        res = json.loads(line) if line.strip() else None
        if res is None:
            self._raise_exit()
        if "error" in res:
            self.close()
            raise StreamingFailure(int(res["error"]), res["message"])
        return res

    def _raise_exit(self) -> None:
        self.p.wait(timeout=30)
        err = self.p.stderr.read()[-2000:] if self.p.stderr else ""
        code = self.p.returncode or 40
        self.close()
        raise StreamingFailure(code, f"the acquisition process ended: {err}")

    def ask(self, input: list, labeled: list, context: dict) -> Any:
        """Return the hook's answer for one candidate (bool, or a number in rank mode)."""
        self._send({"input": input, "labeled": labeled, "context": context})
        return self._read()["value"]

    def close(self) -> None:
        """End the process (its stdin closed: it exits) and close its pipes."""
        for stream in (self.p.stdin,):
            try:
                stream.close()
            except BrokenPipeError:
                pass
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        for stream in (self.p.stdout, self.p.stderr):
            stream.close()


def _last_json(stdout: str) -> dict | None:
    for line in reversed((stdout or "").strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None


def random_rule(input: list, context: dict) -> bool:
    """Apply the platform's rule without a hook: sha256 of [context, input], paced."""
    from bayesirt.predictive.streaming import platform_random_u

    pace = min(1.0, context["labels_remaining"] / max(context["items_remaining"], 1))
    return platform_random_u(input, context) < pace


def _context(run: StreamRun, p: int, acquired: int, cursor: int) -> dict:
    return {"subject_id": "s" + hashlib.sha256(run.model_ids[p].encode()).hexdigest()[:10],
            "benchmark_id": anonymous_benchmark(run.benchmark), "labels_acquired": acquired,
            "labels_remaining": MAX_LABELS - acquired, "max_labels": MAX_LABELS,
            "items_remaining": len(run.acquire[p][0]) - cursor}


def acquire_until(run: StreamRun, budget: int, labeled: list, state: dict,
                  acquirer: Acquirer | None) -> None:
    """Buy labels, pair by pair, until every pair holds ``budget`` (or its pool is spent)."""
    mode = "random" if acquirer is None else acquirer.mode
    for p in range(len(run.model_ids)):
        items, ys = run.acquire[p]
        if mode == "rank":
            need = budget - state["acquired"][p]
            left = [j for j in range(len(items)) if j not in state["taken"][p]]
            if need <= 0 or not left:
                continue
            scores = [acquirer.ask([run.subjects[p], items[j]], labeled,
                                   _context(run, p, state["acquired"][p], 0)) for j in left]
            top = [left[j] for j in np.argsort(-np.asarray(scores), kind="stable")[:need]]
            for j in sorted(top):
                labeled.append([[run.subjects[p], items[j]], int(ys[j])])
                state["taken"][p].add(j)
                state["acquired"][p] += 1
            continue
        while state["acquired"][p] < budget and state["cursor"][p] < len(items):
            j = state["cursor"][p]
            inp = [run.subjects[p], items[j]]
            ctx = _context(run, p, state["acquired"][p], j)
            buy = random_rule(inp, ctx) if acquirer is None else acquirer.ask(inp, labeled, ctx)
            state["cursor"][p] += 1
            if buy:
                labeled.append([inp, int(ys[j])])
                state["taken"][p].add(j)
                state["acquired"][p] += 1


def score(run: StreamRun, probs: Sequence[float]) -> dict[str, float]:
    """Brier and log-loss per pair (averaged equally over pairs) and ECE (10 bins)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.concatenate([ys for _, ys in run.evaluate]).astype(np.float64)
    pair = np.concatenate([np.full(len(items), k) for k, (items, _) in enumerate(run.evaluate)])
    q = np.clip(p, 1e-15, 1 - 1e-15)
    brier = [np.mean((p[pair == k] - y[pair == k]) ** 2) for k in np.unique(pair)]
    ll = [-np.mean(y[pair == k] * np.log(q[pair == k]) + (1 - y[pair == k])
                   * np.log1p(-q[pair == k])) for k in np.unique(pair)]
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * np.mean(bins == b)
              for b in np.unique(bins))
    return {"brier": float(np.mean(brier)), "log_loss": float(np.mean(ll)), "ece": float(ece)}


def play(run: StreamRun, submissions: Mapping[str, Workers], acquire_with: str,
         budgets: Sequence[int] = BUDGETS, echo: Any = None) -> tuple[list[dict], list]:
    """Play one run: every predictor at every checkpoint on one shared label list.

    Parameters
    ----------
    run : StreamRun
    submissions : mapping of str to Workers
        Predictor name -> its workers (the submission and the baselines).
    acquire_with : str
        Whose hook buys the labels (the others are scored on the same labels).
    budgets : sequence of int
    echo : callable, optional

    Returns
    -------
    records : list of dict
        One per (predictor, budget): benchmark, scope, seed, predictor, budget, brier,
        log_loss, ece, n_pairs, n_scored, n_labels.
    labeled : list
        The final shared label list.
    """
    inputs = [[run.subjects[k], it] for k, (items, _) in enumerate(run.evaluate) for it in items]
    # Identical inputs are predicted once per checkpoint (as the platform does).
    keys = [json.dumps(x, sort_keys=True) for x in inputs]
    first = {}
    for n, k in enumerate(keys):
        first.setdefault(k, n)
    unique = list(first.values())
    labeled: list = []
    state = {"acquired": [0] * len(run.model_ids), "cursor": [0] * len(run.model_ids),
             "taken": [set() for _ in run.model_ids]}
    acquirer = submissions[acquire_with].acquirer()
    records = []
    try:
        for budget in budgets:
            if budget:
                acquire_until(run, budget, labeled, state,
                              None if acquirer.mode == "random" else acquirer)
            frozen = json.loads(json.dumps(labeled))  # what the workers receive
            for name, w in submissions.items():
                got = w.predict([inputs[j] for j in unique], frozen)
                by_key = {keys[j]: v for j, v in zip(unique, got, strict=True)}
                rec = {"benchmark": run.benchmark, "scope": run.scope, "seed": run.seed,
                       "predictor": name, "budget": int(budget),
                       **score(run, [by_key[k] for k in keys]),
                       "n_pairs": len(run.model_ids), "n_scored": len(inputs),
                       "n_labels": len(labeled)}
                records.append(rec)
            if echo is not None:
                echo(f"{run.benchmark} ({run.scope}, seed {run.seed}) budget {budget}: "
                     + ", ".join(f"{r['predictor']} Brier {r['brier']:.4f}"
                                 for r in records[-len(submissions):]))
    finally:
        acquirer.close()
    return records, labeled


def python_default() -> str:
    """Return the interpreter the workers use by default: this one."""
    return sys.executable
