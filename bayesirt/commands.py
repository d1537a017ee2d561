"""What each ``bayesirt`` subcommand does once its arguments are parsed.

One handler per subcommand (``cmd_<name>``, taking the parsed :class:`argparse.Namespace`
and returning the exit status): it sets what must be set before JAX starts
(:func:`configure_jax`), turns ``--seed`` into a key, and calls one function of the package
(mostly :mod:`bayesirt.pipeline`). :mod:`bayesirt.cli` defines the arguments and maps each
subcommand to its handler; errors propagate to it, which prints them as one line.
"""

from __future__ import annotations

import argparse
import os
import sys


def configure_jax(device: str, chains: int, devices: int = 1) -> None:
    """Set process-global JAX options; must run before JAX is imported anywhere.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu`` or ``gpu``.
    chains : int
        Number of chains: on the CPU each chain gets its own host device so chains run in
        parallel threads instead of in lockstep.
    devices : int, default 1
        ``--devices``: shards of the observation axis; on the CPU at least this many host
        devices are forced (whatever the core count), so a sharded fit runs there too.
    """
    if device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        n = max(1, min(chains, os.cpu_count() or 1), devices)
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def cmd_info(args: argparse.Namespace) -> int:
    """Print a summary of a data set (`bayesirt info`)."""
    from bayesirt import data

    print(data.summarize(data.load(args.data, args.test_dir)))
    return 0


def fit_config(args: argparse.Namespace) -> dict:
    """Return the FitConfig fields of ``bayesirt fit``'s arguments."""
    return {
        "model": args.model, "chains": args.chains, "warmup": args.warmup, "draws": args.draws,
        "max_tree_depth": args.max_tree_depth, "target_accept": args.target_accept,
        "device": args.device, "devices": args.devices, "guess": args.guess,
        "contamination": args.contamination, "metadata": args.metadata,
        "outliers": args.outliers,
        "mass_matrix": args.mass_matrix,
        "embedding_components": args.embedding_components,
        "parameterisation": args.parameterisation, "log_likelihood": args.log_likelihood,
        "progress": not args.no_progress, "seed": args.seed,
    }


def _echo(text: str) -> None:
    print(text, flush=True)


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit a model by NUTS and save the posterior (`bayesirt fit`)."""
    from bayesirt.outputs import prepare_output

    # A bad --out is refused before JAX is configured; the fit checks it again, with the
    # expected size, before sampling.
    prepare_output(args.out, what="posterior file")
    configure_jax(args.device, args.chains, args.devices)
    import jax

    from bayesirt import pipeline
    from bayesirt.inference.sharding import initialize_distributed

    initialize_distributed()  # multi-host (--devices over several hosts): README

    fitted = pipeline.fit_and_save(jax.random.key(args.seed), args.data, args.out,
                                   echo=_echo, **fit_config(args))
    if fitted["problem"] is not None:
        print(f"bayesirt fit: error: {args.out}: {fitted['problem']} (posterior kept at "
              f"{fitted['path']})", file=sys.stderr)
        return 2
    return 1 if args.strict and not fitted["passed"] else 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Write the diagnostic report of a saved posterior (`bayesirt diagnose`)."""
    from bayesirt.diagnostics import run_diagnose
    from bayesirt.outputs import prepare_output

    prepare_output(args.out, what="report")
    if args.json:
        prepare_output(args.json, what="JSON summary")
    summary = run_diagnose(
        args.posterior,
        args.out,
        json_path=args.json,
        test_dir=args.test_dir,
        strict=args.strict,
        rhat_max=args.rhat_max,
        ess_min=args.ess_min,
        bfmi_min=args.bfmi_min,
        progress=not args.no_progress,
    )
    print(f"report written to {args.out}")
    if summary.failures:
        print("convergence problems:")
        for line in summary.failures:
            print(f"  - {line}")
    else:
        print("convergence checks passed")
    return 1 if args.strict and not summary.passed else 0


def cmd_abilities(args: argparse.Namespace) -> int:
    """Write the ability table of a saved posterior (`bayesirt abilities`)."""
    from bayesirt import pipeline

    pipeline.abilities(args.posterior, args.out, by_benchmark=args.by_benchmark,
                       fmt=args.format, top_k=args.top_k, interval=args.interval,
                       json_out=args.json, plot=args.plot, echo=_echo)
    return 0


def _write_csv(path: str, columns: dict) -> None:
    import pandas as pd

    from bayesirt.posteriors.io import atomic_path

    with atomic_path(path) as tmp:  # no half-written CSV under the final name
        pd.DataFrame(columns).to_csv(tmp, index=False)


def cmd_predict(args: argparse.Namespace) -> int:
    """Predict P(correct) for the test pairs (`bayesirt predict`)."""
    from bayesirt import pipeline
    from bayesirt.outputs import prepare_output

    prepare_output(args.out, what="predictions CSV")
    table = pipeline.predict(
        args.posterior,
        args.test_dir,
        train_dir=args.train_dir,
        labeled=args.labeled,
        neighbours=args.neighbours,
        progress=not args.no_progress,
    )
    _write_csv(args.out, table)
    print(f"{len(table['item_id']):,} predictions written to {args.out}")
    return 0


def cmd_acquire(args: argparse.Namespace) -> int:
    """Rank the test pairs to label next (`bayesirt acquire`)."""
    from bayesirt import pipeline
    from bayesirt.outputs import prepare_output

    prepare_output(args.out, what="pairs CSV")
    table = pipeline.acquire(
        args.posterior,
        args.test_dir,
        budget=args.budget,
        method=args.method,
        train_dir=args.train_dir,
        labeled=args.labeled,
        neighbours=args.neighbours,
        progress=not args.no_progress,
    )
    _write_csv(args.out, table)
    n = len(table["rank"])
    if n < args.budget:
        print(f"bayesirt acquire: note: --budget {args.budget:,} is more than the {n:,} "
              f"candidate pairs (test pairs not yet labelled): all {n:,} are ranked",
              file=sys.stderr)
    print(f"top {n:,} pairs to label written to {args.out}")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    """Package a posterior as a submission ZIP (`bayesirt bundle`)."""
    from bayesirt import pipeline

    streaming = args.protocol == "streaming"
    if args.acquisition is not None:
        allowed = ("random", "bald") if streaming else ("bald", "epig")
        if args.acquisition not in allowed:
            print(f"bayesirt bundle: --acquisition {args.acquisition} is not one of {allowed} "
                  f"for --protocol {args.protocol}", file=sys.stderr)
            return 2
    info = pipeline.bundle(
        args.posterior, args.out, strict=args.strict, max_draws=args.draws or "auto",
        acquisition=args.acquisition, protocol=args.protocol,
        # The streaming protocol has no training items to find neighbours among.
        predict_options={"neighbours": True} if args.neighbours and not streaming else None,
    )
    print(info)
    return 0




def cmd_evaluate(args: argparse.Namespace) -> int:
    """Judge a submission ZIP locally as the platform would (`bayesirt evaluate`)."""
    from bayesirt.outputs import prepare_output
    from bayesirt.submission import SubmissionError, evaluate

    if args.protocol == "streaming":
        return _evaluate_streaming(args)
    if args.json:
        prepare_output(args.json, what="JSON metrics")
    try:
        report = evaluate(
            args.submission,
            args.data,
            budgets=args.budgets,
            policy=args.policy,
            python=args.python,
            time_limit=args.time_limit,
            json_out=args.json,
            seed=args.seed,
            sandbox=args.sandbox,
        )
    except SubmissionError as exc:
        # The submission itself failed (raised, timed out, bad output): what the platform
        # would show, in one message, not a traceback of the harness.
        print(f"bayesirt evaluate: the submission failed: {exc}", file=sys.stderr)
        return 1
    print(report.table())
    return 0


def _evaluate_streaming(args: argparse.Namespace) -> int:
    from bayesirt.submission.coordinator import StreamingFailure
    from bayesirt.submission.stream_eval import evaluate_streaming

    out = args.out or "streaming-eval"
    if args.json:
        from bayesirt.outputs import prepare_output

        prepare_output(args.json, what="JSON metrics")
    try:
        res = evaluate_streaming(
            args.submission, args.data, out, benchmarks=args.holdout_benchmarks,
            pairs=args.pairs, seeds=args.seeds, scopes=args.split_scope, workers=args.workers,
            python=args.python, per_call_timeout=args.per_call_timeout, echo=_echo)
    except StreamingFailure as exc:
        print(f"bayesirt evaluate: the submission failed: {exc}", file=sys.stderr)
        return 1
    print(res["table"])
    print(f"written: {res['table_path']}, {res['plot_path']}, {res['records_path']}")
    if args.json:
        import json

        from bayesirt.submission.heldout_report import summarise

        summary = [{"benchmark": b, "scope": sc, "predictor": pr, **v}
                   for (b, sc, pr), v in summarise(res["records"]).items()]
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"summary": summary, "timing": res["timing"], "records": res["records"]},
                      fh, indent=2)
        print(f"metrics written to {args.json}")
    return 0


def cmd_heldout(args: argparse.Namespace) -> int:
    """Leave-one-benchmark-out learning curves (`bayesirt heldout`)."""
    configure_jax(args.device, args.chains)
    import jax

    from bayesirt import pipeline

    config = {"model": args.model, "chains": args.chains, "warmup": args.warmup,
              "draws": args.draws, "device": args.device, "progress": not args.no_progress,
              "seed": args.seed}
    res = pipeline.heldout(jax.random.key(args.seed), args.data, args.out,
                           benchmarks=args.benchmarks, scopes=args.scope, seeds=args.split_seeds,
                           min_items=args.min_items, echo=_echo, **config)
    print(res["table"])
    print(f"written: {res['table_path']}, {res['plot_path']}, {res['records_path']}")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    """Make a competition-layout data folder from long-form responses (`bayesirt split`)."""
    from bayesirt.outputs import prepare_output_folder
    from bayesirt.submission import split_dataset

    prepare_output_folder(args.out, what="data folder")
    out = split_dataset(args.data, args.out, test_frac=args.test_frac, seed=args.seed)
    print(f"data folder written to {out} (train/ test/ reference/)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole workflow on the bundled data set (`bayesirt demo`)."""
    configure_jax(args.device, 4)
    import jax

    from bayesirt import pipeline

    pipeline.demo(jax.random.key(args.seed), args.out, warmup=args.warmup, draws=args.draws,
                  seed=args.seed, device=args.device, progress=not args.no_progress,
                  echo=_echo)
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    """Run a grid of fits on a local Dask cluster (`bayesirt batch`)."""
    from bayesirt import pipeline

    report = pipeline.batch(args.plan, args.out, workers=args.workers, scheduler=args.scheduler,
                            retries=args.retries, progress=not args.no_progress, echo=_echo)
    print(report.text())
    failed = report.count("failed")
    if failed:
        print(f"bayesirt batch: {failed} fit(s) failed (failed.json in their folders says "
              "why); run the same command again to retry only those", file=sys.stderr)
        return 1
    print(f"compare them: bayesirt compare {args.out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare a batch's fits on one page (`bayesirt compare`)."""
    import json

    from bayesirt import pipeline
    from bayesirt.batch.compare import text_table
    from bayesirt.batch.files import jsonable

    out = args.out or os.path.join(args.dir, "compare.html")
    to_stdout = args.json == "-"
    result = pipeline.compare(args.dir, out=out, json_out=None if to_stdout else args.json)
    if to_stdout:
        print(json.dumps(jsonable(result), indent=2))
        return 0
    print(text_table(result), end="")
    print(f"page written to {out}" + (f", JSON to {args.json}" if args.json else ""))
    return 0
