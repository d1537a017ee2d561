"""``bayesirt demo``: every step on the data set bundled with the package."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bayesirt import data as _data
from bayesirt.pipeline.core import fit_and_save
from bayesirt.pipeline.reports import abilities


def demo(
    rng_key: Any,
    out: str | os.PathLike = "demo-output",
    *,
    warmup: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    echo: Any = print,
) -> dict[str, Any]:
    """Fit -> diagnose -> bundle -> evaluate on the data set bundled with the package.

    Parameters
    ----------
    rng_key : jax.Array
        PRNG key of the fit.
    out : path-like
        Folder for every output (created if missing).
    warmup, draws, seed, device, progress
        Fit settings (4 chains; ``seed`` is recorded with the fit).
    echo : callable, default print

    Returns
    -------
    dict
        ``posterior``, ``report``, ``abilities``, ``bundle`` paths, the diagnostic
        ``summary`` and the ``evaluation`` report.
    """
    from bayesirt.diagnostics import run_diagnose
    from bayesirt.outputs import prepare_output_folder
    from bayesirt.submission import build_bundle, evaluate

    out = prepare_output_folder(out, what="demo output folder")
    root = _data.bundled_dataset()
    started = time.perf_counter()

    def step(title: str) -> None:
        echo(f"\n== {title}  [{time.perf_counter() - started:.0f} s]")

    step(f"data: {root.name} (bundled with the package)")
    echo(_data.summarize(_data.load(root)))

    step("fit: hier2pl by NUTS")
    fitted = fit_and_save(rng_key, root, out / "posterior.nc", echo=echo, model="hier2pl",
                          chains=4, warmup=warmup, draws=draws, device=device,
                          log_likelihood=True, progress=progress, seed=seed)
    posterior = fitted["path"]

    step("diagnose: ArviZ report")
    report = out / "report.html"
    summary = run_diagnose(posterior, report, json_path=out / "summary.json",
                           test_dir=root / "test", progress=progress)
    echo(f"report: {report}  ({'PASS' if summary.passed else 'FAIL'})")
    for line in summary.failures:
        echo(f"  - {line}")

    step("abilities: ranked general ability with intervals")
    ability_csv = abilities(posterior, out / "abilities.csv", plot=out / "abilities.png",
                            echo=echo)

    step("bundle: competition submission")
    zip_path = out / "submission.zip"
    echo(str(build_bundle(posterior, zip_path, predict_options={"neighbours": True})))

    step("evaluate: the ZIP judged as the platform would (new items, revealed labels)")
    evaluation = evaluate(zip_path, root, budgets=(0.0, 0.05, 0.10), policy="both",
                          json_out=out / "evaluation.json")
    echo(evaluation.table())

    held = DEMO_STREAMING_BENCHMARK
    step(f"streaming: the live protocol on a benchmark the posterior never saw ({held})")
    stream = _demo_streaming(rng_key, root, out, held, warmup=warmup, draws=draws,
                             device=device, progress=progress, echo=echo)
    step(f"done: open {report} in a browser")
    return {"posterior": posterior, "report": report, "bundle": zip_path, "summary": summary,
            "abilities": ability_csv, "evaluation": evaluation, "streaming": stream}


#: The benchmark the demo's streaming run holds out.
DEMO_STREAMING_BENCHMARK = "gsm8k"


def _demo_streaming(rng_key: Any, root: Path, out: Path, held: str, *, warmup: int,
                    draws: int, device: str, progress: bool, echo: Any) -> dict[str, Any]:
    """Fit without ``held``, bundle it for streaming, replay the platform on ``held``.

    The fit: 2 chains, at most 500 + 500 (the demo's time); the replay: one run of 12 pairs.
    """
    import jax

    from bayesirt.submission import build_bundle
    from bayesirt.submission.heldout_run import fit_without
    from bayesirt.submission.stream_eval import evaluate_streaming

    rest = _data.without_benchmark(_data.load(root), held)
    config = {"model": "hier2pl", "chains": 2, "warmup": min(warmup, 500),
              "draws": min(draws, 500), "device": device, "progress": progress}
    fit_path = out / f"posterior-without-{held}.nc"
    fit_without(jax.random.fold_in(rng_key, 1), rest, fit_path, echo, config)
    zip_path = out / "submission-streaming.zip"
    echo(str(build_bundle(fit_path, zip_path, protocol="streaming")))
    res = evaluate_streaming(zip_path, root, out / "streaming", benchmarks=[held], seeds=[0],
                             echo=echo)
    echo(res["table"])
    return res
