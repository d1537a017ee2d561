"""Child process of the streaming coordinator: calls a submission as the platform does.

Run as ``python -I stream_worker.py SUBMISSION_DIR MODE`` (standard library only, never
bayesirt: it proves the submission runs with what the container has; Python 3.10+):

* ``evaluate``: reads one JSON job from stdin, ``{"inputs": [[subject, item], ...],
  "labeled": [...], "per_call_timeout": s, "block_imports": [...]}``, calls
  ``model.predict(input, labeled)`` for each input, and writes ``{"probabilities": [...],
  "call_seconds": [...], "import_seconds": s}`` to stdout. A fresh process per checkpoint and
  worker, as the platform recreates its workers.
* ``acquire``: a long-lived process (the platform's client): one JSON request per stdin
  line, one JSON answer per stdout line. ``{"kind": "hook", ...}`` asks ``labeling.
  acquisition_function`` (``{"value": bool}``); ``{"kind": "mode"}`` reports the hook's call
  shape. The shape follows the platform's rule: one parameter = rank mode (a finite number),
  otherwise streaming mode with the named arguments it accepts (``prediction`` computed by
  ``predict`` only if it takes it).

Failures end the process with the platform's exit codes and one JSON line on stdout
(``{"error": code, "message": ...}``): 40 predict (or the hook) raised, 41 a call ran past
the per-call limit, 42 an invalid value (a probability that is not finite in [0, 1], a hook
answer that is not a native bool / finite number).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import math
import signal
import sys
import time
import traceback

RAISED, TIMED_OUT, INVALID = 40, 41, 42


class _Blocker:
    """Meta-path finder refusing packages the container does not promise.

    The batch runner (runner.py) has the same one: each child script is copied alone into a
    temporary folder and runs with ``-I``, so neither can import the other.
    """

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(
                f"No module named {name!r}: it is not in the competition container (blocked "
                "by bayesirt evaluate)", name=name)
        return None


class _CallTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise _CallTimeout()


def _fail(code, message):
    sys.stdout.write(json.dumps({"error": code, "message": message}) + "\n")
    sys.stdout.flush()
    sys.exit(code)


def _call(what, limit, fn, *args, **kwargs):
    """Run one participant call under the per-call limit; exit 40/41 on failure."""
    if limit:
        signal.setitimer(signal.ITIMER_REAL, float(limit))
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs), time.perf_counter() - t0
    except _CallTimeout:
        _fail(TIMED_OUT, f"{what} ran past the per-call limit of {limit:g} s")
    except Exception as exc:  # the participant's error, reported in one line + traceback
        tb = traceback.format_exc(limit=-4)
        _fail(RAISED, f"{what} raised {type(exc).__name__}: {exc}\n{tb}")
    finally:
        if limit:
            signal.setitimer(signal.ITIMER_REAL, 0.0)
    return None, 0.0  # unreachable


def _probability(value, what):
    if isinstance(value, bool):
        _fail(INVALID, f"{what} returned {value!r}, not a probability")
    try:
        p = float(value)
    except (TypeError, ValueError):
        _fail(INVALID, f"{what} returned {type(value).__name__} {value!r}: float() fails")
    if not math.isfinite(p) or p < 0.0 or p > 1.0:
        _fail(INVALID, f"{what} returned {p!r}: not a finite probability in [0, 1]")
    return p


def _hook_shape(fn):
    """(mode, positional, keywords) of an acquisition hook, by the platform's rule."""
    sig = inspect.signature(fn)
    names = ("prediction", "labeled", "context")
    kw = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    accepted = tuple(n for n in names if kw or (
        n in sig.parameters and sig.parameters[n].kind != inspect.Parameter.POSITIONAL_ONLY))
    shapes = [(False, names), (True, ())]
    if accepted and accepted != names:
        shapes.append((False, accepted))
    for positional, supplied in shapes:
        try:
            if positional:
                sig.bind(None, None, None, None)
            else:
                sig.bind(None, **{n: None for n in supplied})
        except TypeError:
            continue
        return "stream", positional, supplied
    sig.bind(None)  # TypeError: not a hook the platform can call
    return "rank", False, ()


def _import(sub, block):
    if block:
        sys.meta_path.insert(0, _Blocker(block))
    sys.path.insert(0, sub)
    t0 = time.perf_counter()
    try:
        model = importlib.import_module("model")
    except Exception as exc:
        _fail(RAISED, f"importing model.py raised {type(exc).__name__}: {exc}")
    return model, time.perf_counter() - t0


def evaluate(sub):
    """Predict every input of the job on stdin; write the probabilities to stdout."""
    job = json.loads(sys.stdin.read())
    model, t_import = _import(sub, job.get("block_imports") or [])
    labeled = job["labeled"]
    limit = float(job.get("per_call_timeout") or 0)
    probs, secs = [], []
    for n, inp in enumerate(job["inputs"]):
        value, dt = _call(f"predict (target {n})", limit, model.predict, inp, labeled)
        probs.append(_probability(value, f"predict (target {n})"))
        secs.append(dt)
    sys.stdout.write(json.dumps({"probabilities": probs, "call_seconds": secs,
                                 "import_seconds": t_import}) + "\n")


def acquire(sub):
    """Answer hook calls, one JSON line in and one out, until stdin closes."""
    first = json.loads(sys.stdin.readline())
    model, _ = _import(sub, first.get("block_imports") or [])
    try:
        labeling = importlib.import_module("labeling")
    except ModuleNotFoundError:
        labeling = None
    fn = getattr(labeling, "acquisition_function", None) if labeling else None
    mode, positional, keywords = ("random", False, ()) if fn is None else _hook_shape(fn)
    sys.stdout.write(json.dumps({"mode": mode}) + "\n")
    sys.stdout.flush()
    limit = float(first.get("per_call_timeout") or 0)
    for line in sys.stdin:
        req = json.loads(line)
        inp, labeled, context = req["input"], req.get("labeled"), req.get("context")
        if mode == "rank":
            value, _ = _call("acquisition_function", limit, fn, copy.deepcopy(inp))
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(float(value)):
                _fail(INVALID, f"one-argument acquisition_function returned {value!r}: it "
                               "must be a finite number")
            out = float(value)
        else:
            prediction = None
            if positional or "prediction" in keywords:
                p, _ = _call("predict (for the hook)", limit, model.predict,
                             copy.deepcopy(inp), copy.deepcopy(labeled))
                prediction = _probability(p, "predict (for the hook)")
            vals = {"prediction": prediction, "labeled": labeled, "context": context}
            if positional:
                value, _ = _call("acquisition_function", limit, fn, copy.deepcopy(inp),
                                 prediction, copy.deepcopy(labeled), copy.deepcopy(context))
            else:
                value, _ = _call("acquisition_function", limit, fn, copy.deepcopy(inp),
                                 **{k: copy.deepcopy(vals[k]) for k in keywords})
            if type(value) is not bool:
                _fail(INVALID, f"acquisition_function returned {type(value).__name__} "
                               f"{value!r}: the streaming hook must return a native bool")
            out = value
        sys.stdout.write(json.dumps({"value": out}) + "\n")
        sys.stdout.flush()


def main(argv):
    """Run ``stream_worker.py SUBMISSION_DIR MODE``."""
    signal.signal(signal.SIGALRM, _alarm)
    sub, mode = argv[1], argv[2]
    if mode == "evaluate":
        evaluate(sub)
    elif mode == "acquire":
        acquire(sub)
    else:
        _fail(2, f"unknown mode {mode!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
