"""One fit of a batch, as a Dask worker runs it: fit, check, save, score, summarise.

:func:`run_fit` never raises for a problem of the fit itself (bad data, a divergence
storm, an error while sampling): it writes ``failed.json`` with the error and returns the
record, so one fit's failure never stops the others. Outputs are written atomically.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from bayesirt.batch.files import FAILED, POSTERIOR, SUMMARY, write_json
from bayesirt.errors import InputError

#: The convergence thresholds of the verdict (those of ``bayesirt fit --strict``).
RHAT_MAX, ESS_MIN = 1.01, 400


def one_line(exc: BaseException) -> str:
    """Describe an exception in one line: ``TypeName: message``."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _failures(headline: dict[str, Any]) -> list[str]:
    """List the convergence checks a fit misses, one phrase each."""
    out = []
    rhat = headline.get("rhat_max")
    if rhat is None or not math.isfinite(rhat):
        out.append("R-hat unknown (one chain)")
    elif rhat > RHAT_MAX:
        out.append(f"R-hat {rhat:.4f} > {RHAT_MAX}")
    for key, what in (("ess_bulk_min", "bulk-ESS"), ("ess_tail_min", "tail-ESS")):
        if headline[key] < ESS_MIN:
            out.append(f"{what} {headline[key]:.0f} < {ESS_MIN}")
    if headline["divergences"]:
        out.append(f"{headline['divergences']} divergences")
    return out


def _heldout(posterior: Path, spec: dict[str, Any], options: dict[str, Any]) -> dict:
    """Log-loss, AUC, Brier, ECE of ``pipeline.predict`` on the test pairs vs the truth."""
    import pandas as pd

    from bayesirt import pipeline
    from bayesirt.diagnostics.heldout import join_truth, locate, metrics

    paths = locate(spec["data"])
    table = pipeline.predict(posterior, paths["test_dir"], train_dir=paths["train_dir"],
                             neighbours=bool(options.get("neighbours")))
    y, p, _ = join_truth(pd.DataFrame(table), paths["ground_truth"])
    return {**metrics(y, p), "neighbours": bool(options.get("neighbours"))}


def _fit_one(spec: dict[str, Any], folder: Path, options: dict[str, Any]) -> dict[str, Any]:
    import jax

    from bayesirt import __version__, pipeline
    from bayesirt import data as _data
    from bayesirt.inference import convergence_headline
    from bayesirt.outputs import prepare_output
    from bayesirt.posteriors import save

    started, t0 = _dt.datetime.now(_dt.UTC), time.perf_counter()
    (folder / SUMMARY).unlink(missing_ok=True)  # a new posterior never sits beside an old summary
    irt = _data.load(spec["data"])
    if irt.fingerprint != spec["data_fingerprint"]:
        raise InputError(f"{spec['data']}: the data changed since the plan was read "
                         "(fingerprint differs); run the batch again")
    config = dict(spec["config"], progress=False)
    post = folder / POSTERIOR
    prepare_output(post, what="posterior file", expected_bytes=pipeline.expected_posterior_bytes(
        irt, config["chains"], config["draws"], config["log_likelihood"]))
    result = pipeline.fit(jax.random.key(config["seed"]), irt, **config)
    headline = convergence_headline(result.posterior, result.sample_stats,
                                    result.max_tree_depth, result.dims, result.coords)
    transitions = result.n_chains * result.n_draws
    divergent = headline["divergences"] / transitions
    if divergent > options["max_divergent_fraction"]:
        raise RuntimeError(
            f"divergence storm: {headline['divergences']} of {transitions} transitions "
            f"diverged ({divergent:.0%} > max_divergent_fraction "
            f"{options['max_divergent_fraction']:.0%}); the posterior was not kept")
    save(result, post)
    heldout, heldout_error = None, None
    if spec["heldout"] and options.get("heldout", True):
        try:
            heldout = _heldout(post, spec, options)
        except Exception as exc:  # the fit stands; the page says why the metrics are missing
            heldout_error = one_line(exc)
    failures = _failures(headline)
    # Scalars only: the headline may carry per-block detail that the page does not show.
    headline = {k: v for k, v in headline.items() if isinstance(v, int | float | str)
                or (isinstance(v, list) and all(isinstance(x, int | float) for x in v))}
    summary = {
        "status": "ok", "name": spec["name"], "label": spec["label"],
        "variant": spec["variant"], "settings_fingerprint": spec["settings_fingerprint"],
        "data": spec["data"], "data_fingerprint": spec["data_fingerprint"],
        "origin": spec["origin"], "config": spec["config"],
        "headline": headline, "passed": not failures, "failures": failures,
        "verdict": "converged" if not failures else "not converged: " + "; ".join(failures),
        "divergent_fraction": divergent, "heldout": heldout, "heldout_error": heldout_error,
        "has_log_likelihood": result.log_likelihood is not None,
        "posterior": POSTERIOR, "posterior_bytes": post.stat().st_size,
        "sampling_seconds": result.provenance["sampling_wall_seconds"],
        "init_seconds": result.provenance["init_wall_seconds"],
        "chain_method": result.provenance["chain_method"],
        "n_devices": result.provenance["n_devices"],
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "versions": {"bayesirt": __version__, "jax": jax.__version__},
    }
    write_json(folder / SUMMARY, summary)
    (folder / FAILED).unlink(missing_ok=True)
    return summary


def run_fit(spec: dict[str, Any], out_dir: str, options: dict[str, Any]) -> dict[str, Any]:
    """Fit one spec and write its outputs; runs on a Dask worker.

    Parameters
    ----------
    spec : dict
        :meth:`bayesirt.batch.plan.FitSpec.to_dict`.
    out_dir : str
        The batch's output folder (``<out_dir>/<name>/`` is written).
    options : dict
        The plan's ``[batch]`` options.

    Returns
    -------
    dict
        The summary (``status`` ``ok``) or the failure record (``status`` ``failed``,
        ``error``, ``traceback``), also written as ``summary.json`` / ``failed.json``.
    """
    folder = Path(out_dir) / spec["name"]
    t0 = time.perf_counter()
    try:
        return _fit_one(spec, folder, options)
    except Exception as exc:  # one fit's failure is recorded, never raised into the batch
        record = {"status": "failed", "name": spec["name"], "label": spec["label"],
                  "error": one_line(exc), "traceback": traceback.format_exc(),
                  "wall_seconds": round(time.perf_counter() - t0, 2),
                  "worker": f"{socket.gethostname()}:{os.getpid()}",
                  "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                  "spec": spec}
        write_json(folder / FAILED, record)
        return record
