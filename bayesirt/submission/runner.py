"""Child-process runner: play the competition platform against an extracted submission.

Run as ``python -I runner.py JOB.json`` with the extracted submission folder as the working
directory. It imports ONLY the standard library and numpy (never bayesirt), so it proves that
a submission works with what the competition container has. Steps, as on the platform:

1. import ``model`` (and ``labeling`` when the adaptive policy is asked for) from the
   submission folder;
2. ``model.train(train_dir)`` once;
3. for each (policy, budget): choose ``ceil(budget * n)`` test pairs to reveal -- the top
   scores of ``labeling.score_pairs`` (adaptive) or ``numpy.random.default_rng(seed)``
   (random) -- hand them with their ground-truth labels to ``model.predict`` and write what it
   returns to the output folder as JSON.

The parent (``bayesirt.submission.harness``) validates and scores the outputs. A failure is
written to ``error.json`` (type, message, traceback, stage) and the exit status is 2.

Python 3.10 compatible on purpose: the platform may run any of 3.10 to 3.13.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
import os
import sys
import time
import traceback


def _log(msg: str) -> None:
    print(f"[runner] {msg}", file=sys.stderr, flush=True)


def _read_csv(path: str, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        return [tuple(row[c] for c in columns) for row in reader]


def n_to_reveal(budget: float, n: int) -> int:
    """``ceil(budget * n)``, guarded against float noise (0.05 * 100 = 5.000000000000001)."""
    return min(n, max(0, math.ceil(budget * n - 1e-9)))


def _choose(policy, budget, pairs, job, labeling, timings):
    import numpy as np

    n = len(pairs)
    k = n_to_reveal(budget, n)
    if k == 0:
        return []
    if policy == "random":
        rng = np.random.default_rng(job["seed"])
        return sorted(int(i) for i in rng.choice(n, size=k, replace=False))
    t0 = time.perf_counter()
    scores = labeling.score_pairs(
        [{"model_id": m, "item_id": i} for m, i in pairs], job["train_dir"], job["test_dir"]
    )
    timings["score_pairs"] = time.perf_counter() - t0
    try:
        scores = np.asarray(list(scores), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"labeling.score_pairs must return numbers, got: {exc}") from exc
    if scores.shape != (n,):
        raise ValueError(
            f"labeling.score_pairs returned {scores.size} scores for {n} candidate pairs"
        )
    if not np.isfinite(scores).all():
        bad = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise ValueError(f"labeling.score_pairs returned a non-finite score at position {bad}")
    # Stable sort: ties keep the test_pairs order, as a deterministic platform would.
    top = np.argsort(-scores, kind="stable")[:k]
    return sorted(int(i) for i in top)


def _serialise(preds) -> dict:
    """Turn predict()'s list of dicts into columns; the parent does the real validation."""
    if not isinstance(preds, (list, tuple)):
        raise TypeError(f"model.predict must return a list of dicts, got {type(preds).__name__}")
    mids, iids, ps = [], [], []
    for pos, row in enumerate(preds):
        if not isinstance(row, dict):
            raise TypeError(f"model.predict: element {pos} is {type(row).__name__}, not a dict")
        missing = [k for k in ("model_id", "item_id", "predicted_probability") if k not in row]
        if missing:
            raise KeyError(f"model.predict: element {pos} lacks {missing}; keys: {sorted(row)}")
        mids.append(str(row["model_id"]))
        iids.append(str(row["item_id"]))
        try:
            ps.append(float(row["predicted_probability"]))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"model.predict: element {pos} has a non-numeric predicted_probability "
                f"{row['predicted_probability']!r}"
            ) from exc
    return {"model_id": mids, "item_id": iids, "p": ps}


class _Blocker:
    """Meta-path finder refusing the packages the competition container does not promise.

    The harness may run the child under the project's own interpreter, whose site-packages
    hold jax and bayesirt; blocking them makes a submission that needs them fail here.
    """

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(
                f"No module named {name!r}: it is not available in the competition container "
                "(blocked by the bayesirt evaluate harness)",
                name=name,
            )
        return None


def run(job: dict) -> dict:
    """Execute the job and return the summary written to ``result.json``."""
    sub = job["submission_dir"]
    if job.get("block_imports"):
        sys.meta_path.insert(0, _Blocker(job["block_imports"]))
    sys.path.insert(0, sub)
    stage = "import model.py"
    summary: dict = {"python": sys.version.split()[0], "runs": []}
    try:
        if not os.path.isfile(os.path.join(sub, "model.py")):
            raise FileNotFoundError("model.py is missing from the ZIP root")
        model = importlib.import_module("model")
        labeling = None
        if any(r["policy"] == "adaptive" and r["budget"] > 0 for r in job["runs"]):
            stage = "import labeling.py"
            if not os.path.isfile(os.path.join(sub, "labeling.py")):
                raise FileNotFoundError(
                    "labeling.py is missing from the ZIP root, so the adaptive policy cannot "
                    "run; use --policy random or add labeling.py"
                )
            labeling = importlib.import_module("labeling")
        stage = "read test pairs"
        pairs = _read_csv(os.path.join(job["test_dir"], "test_pairs.csv"), ("model_id", "item_id"))
        truth = {}
        for m, i, y in _read_csv(job["ground_truth"], ("model_id", "item_id", "label")):
            truth[(m, i)] = int(y)
        missing = [p for p in pairs if p not in truth]
        if missing:
            raise ValueError(f"ground truth lacks {len(missing)} test pairs, e.g. {missing[0]}")

        stage = "model.train"
        t0 = time.perf_counter()
        model.train(job["train_dir"])
        summary["train_seconds"] = time.perf_counter() - t0
        _log(f"train: {summary['train_seconds']:.2f} s")

        for idx, spec in enumerate(job["runs"]):
            policy, budget = spec["policy"], float(spec["budget"])
            timings: dict = {}
            stage = f"labeling.score_pairs (policy={policy}, budget={budget:g})"
            chosen = _choose(policy, budget, pairs, job, labeling, timings)
            revealed = [
                {"model_id": pairs[j][0], "item_id": pairs[j][1], "label": truth[pairs[j]]}
                for j in chosen
            ]
            stage = f"model.predict (policy={policy}, budget={budget:g})"
            t0 = time.perf_counter()
            preds = model.predict(job["train_dir"], job["test_dir"], revealed)
            timings["predict"] = time.perf_counter() - t0
            out = _serialise(preds)
            out["revealed"] = chosen
            name = f"run_{idx}.json"
            with open(os.path.join(job["out_dir"], name), "w", encoding="utf-8") as fh:
                json.dump(out, fh)
            summary["runs"].append(
                {"policy": policy, "budget": budget, "file": name, "timings": timings}
            )
            _log(
                f"{policy} budget={budget:g}: revealed {len(chosen)}, "
                + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items())
            )
    except BaseException as exc:  # noqa: BLE001 -- everything goes back to the parent
        err = {
            "stage": stage,
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exc(),
        }
        with open(os.path.join(job["out_dir"], "error.json"), "w", encoding="utf-8") as fh:
            json.dump(err, fh)
        raise
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -I runner.py JOB.json``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -I runner.py JOB.json", file=sys.stderr)
        return 64
    with open(argv[0], encoding="utf-8") as fh:
        job = json.load(fh)
    try:
        summary = run(job)
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        return 2
    # The parent must be able to tell whether bayesirt or jax leaked into the child.
    summary["modules"] = sorted(
        m for m in ("bayesirt", "jax", "numpyro", "arviz", "xarray", "netCDF4", "h5py")
        if m in sys.modules
    )
    with open(os.path.join(job["out_dir"], "result.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
