"""The workflow as a Python API: the same steps the CLI runs, for notebooks and scripts.

Data flows one way: ``bayesirt.data`` -> ``bayesirt.inference`` -> ``bayesirt.posteriors``
-> ``bayesirt.predictive`` -> ``bayesirt.submission``. This module only strings those calls
together; it holds no statistics of its own.

Example
-------
>>> import jax
>>> from bayesirt import pipeline
>>> data = pipeline.load_data("path/to/data")                      # doctest: +SKIP
>>> result = pipeline.fit(jax.random.key(0), data, model="hier2pl")  # doctest: +SKIP
>>> pipeline.save_posterior(result, "posterior.nc")                # doctest: +SKIP
>>> table = pipeline.predict("posterior.nc", "path/to/data/test")    # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bayesirt import data as _data
from bayesirt.errors import InputError, InputWarning


def load_data(path: str | os.PathLike, test_dir: str | os.PathLike | None = None) -> Any:
    """Read and validate a data set (see :func:`bayesirt.data.load`)."""
    return _data.load(path, test_dir)


def fit(rng_key: Any, data: Any, **config: Any) -> Any:
    """Fit a model by NUTS; keyword arguments are :class:`bayesirt.inference.FitConfig` fields.

    Parameters
    ----------
    rng_key : jax.Array
        PRNG key (e.g. ``jax.random.key(0)``).
    data : bayesirt.data.IRTData
    **config
        ``model``, ``chains``, ``warmup``, ``draws``, ``max_tree_depth``, ``target_accept``,
        ``device``, ``guess``, ``embedding_components``, ``log_likelihood``, ``progress``,
        ``seed``.

    Returns
    -------
    bayesirt.inference.FitResult
    """
    from bayesirt.inference import FitConfig
    from bayesirt.inference import fit as _fit

    return _fit(rng_key, data, FitConfig(**config))


def save_posterior(result: Any, path: str | os.PathLike, *, compress: bool = True) -> Path:
    """Save a fit as the posterior NetCDF (see :func:`bayesirt.posteriors.save`)."""
    from bayesirt.posteriors import save

    return save(result, path, compress=compress)


def load_draws(posterior_path: str | os.PathLike, *, max_draws: int | None = None) -> Any:
    """Posterior draws for prediction, from a posterior NetCDF or a flat artifact.

    Parameters
    ----------
    posterior_path : path-like
        A file written by :func:`save_posterior` (NetCDF4 DataTree), converted in memory
        (:func:`bayesirt.posteriors.flat_arrays`), or by
        :func:`bayesirt.predictive.save_flat` (NetCDF3 flat artifact).
    max_draws : int, optional
        Thin to at most this many draws (evenly spaced).

    Returns
    -------
    bayesirt.predictive.PosteriorDraws
    """
    from bayesirt import predictive
    from bayesirt.posteriors import flat_arrays

    path = Path(posterior_path)
    if not path.is_file():
        raise InputError(f"{path}: no such posterior file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:3] == b"CDF":  # NetCDF3 classic: already the flat artifact
        draws = predictive.load_flat(path)
        return draws if max_draws is None else draws.thin(max_draws)
    return predictive.PosteriorDraws.from_arrays(**flat_arrays(path, max_draws=max_draws))


def _test_inputs(test_dir: str | os.PathLike, train_dir: str | os.PathLike | None) -> Any:
    """Parse the test pairs and new items with the package's one parser."""
    import warnings

    test_dir = Path(test_dir)
    if train_dir is None:
        sibling = test_dir.parent / "train"
        if not sibling.is_dir():
            raise InputError(
                f"{test_dir}: cannot find the train dir beside it ({sibling}); pass --train-dir"
            )
        train_dir = sibling
    with warnings.catch_warnings():
        # Test models without training responses: the predictive engine says, in one line,
        # which of them the posterior lacks too and what prior they get (an InputWarning).
        warnings.filterwarnings("ignore", message=r".*model\(s\) in .* have no training "
                                "responses", category=_data.DataWarning)
        return _data.load(train_dir, test_dir)


def _prepare(posterior_path, test_dir, train_dir, labeled) -> tuple:
    """Draws, parsed data, the test pairs' ids and the revealed labels."""
    from bayesirt.predictive import inputs

    draws = load_draws(posterior_path)
    data = _test_inputs(test_dir, train_dir)
    model_ids, item_ids = inputs.test_pairs(data)
    labels = None if labeled is None else _data.read_labeled_pairs(labeled)
    return draws, data, model_ids, item_ids, labels


def _engine_inputs(draws, data, labels, neighbours: bool, progress: bool) -> dict[str, Any]:
    """Keyword arguments shared by ``predict_pairs`` and ``score_pairs``.

    New items, evidence and (with ``neighbours``, when the data have item embeddings) the
    neighbour prior come from ``bayesirt.predictive.inputs``, which the submission's glue
    uses too, so ``bayesirt predict`` and the bundle feed the engine the same arrays.
    """
    from bayesirt.predictive import inputs

    return {
        "labels": labels,
        "progress": progress,
        **inputs.engine_inputs(draws, data, use_neighbours=neighbours),
    }


def predict(
    posterior_path: str | os.PathLike,
    test_dir: str | os.PathLike,
    *,
    train_dir: str | os.PathLike | None = None,
    labeled: str | os.PathLike | list[dict] | None = None,
    neighbours: bool = False,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Posterior predictive P(correct) for every row of ``test_dir/test_pairs.csv``.

    Parameters
    ----------
    posterior_path : path-like
        Posterior NetCDF or flat artifact.
    test_dir : path-like
        Holds ``test_pairs.csv`` and ``test_items.csv`` (and optional embeddings).
    train_dir : path-like, optional
        Defaults to ``train/`` beside ``test_dir``.
    labeled : path-like or list of dict, optional
        Revealed labels (CSV with model_id,item_id,label|response, or records).
    neighbours : bool
        Refine new items' difficulty prior by their nearest training items (empirical Bayes,
        see ``bayesirt.predictive``); needs embeddings.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``model_id``, ``item_id`` (object arrays) and ``predicted_probability`` (float64),
        in test_pairs.csv order.
    """
    from bayesirt import predictive

    draws, data, model_ids, item_ids, labels = _prepare(
        posterior_path, test_dir, train_dir, labeled
    )
    probs = predictive.predict_pairs(
        draws, list(model_ids), list(item_ids),
        **_engine_inputs(draws, data, labels, neighbours, progress),
    )
    return {"model_id": model_ids, "item_id": item_ids, "predicted_probability": probs}


def acquire(
    posterior_path: str | os.PathLike,
    test_dir: str | os.PathLike,
    *,
    budget: int,
    method: str = "bald",
    train_dir: str | os.PathLike | None = None,
    labeled: str | os.PathLike | list[dict] | None = None,
    neighbours: bool = False,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Rank the test pairs for labelling and return the top ``budget``.

    Pairs already labelled (``labeled``) are not candidates again.

    Returns
    -------
    dict
        ``model_id``, ``item_id``, ``score`` and ``rank`` (1 = label first) of the chosen pairs.
    """
    from bayesirt import predictive

    if budget < 1:
        raise InputError(f"budget must be a positive number of pairs, got {budget}")
    draws, data, model_ids, item_ids, labels = _prepare(
        posterior_path, test_dir, train_dir, labeled
    )
    if labels is not None:
        done = set(zip(map(str, labels[0]), map(str, labels[1]), strict=True))
        keep = np.array([(m, j) not in done for m, j in zip(model_ids, item_ids, strict=True)])
        model_ids, item_ids = model_ids[keep], item_ids[keep]
    scores = predictive.score_pairs(
        draws, list(model_ids), list(item_ids), method=method, budget=budget,
        **_engine_inputs(draws, data, labels, neighbours, progress),
    )
    order = np.argsort(-scores, kind="stable")[:budget]
    return {
        "model_id": model_ids[order],
        "item_id": item_ids[order],
        "score": scores[order],
        "rank": np.arange(1, order.size + 1),
    }


# --- fitting to a file, bundling, the demo: the orchestration the CLI calls -----------------


def _expected_posterior_bytes(data: Any, chains: int, draws: int, log_likelihood: bool) -> int:
    """Estimate a rough lower bound on the posterior file's size, for the free-space check.

    Per kept draw the file holds about two floats per (model, benchmark) ability (contract
    and standardised site) and four per item (difficulty, log-discrimination and their raw
    sites), float32 and zlib-compressed to roughly half; the log-likelihood adds one float
    per observation.
    """
    per_draw = 2 * data.n_models * max(1, data.n_benchmarks) + 4 * data.n_train_items
    if log_likelihood:
        per_draw += data.n_obs
    return int(chains * draws * per_draw * 4 * 0.5)


def _save_with_fallback(result: Any, out: Path, *, echo: Any) -> tuple[Path, str | None]:
    """Save the posterior; if ``out`` fails after sampling, save beside it or in the temp dir.

    Returns
    -------
    path : Path
        Where the posterior was written.
    problem : str or None
        Why ``out`` itself could not be written (None when it was).
    """
    from bayesirt.outputs import describe_os_error
    from bayesirt.posteriors import save

    try:
        return save(result, out), None
    except OSError as exc:
        problem = describe_os_error(exc)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidates = [out.with_name(f"{out.stem}.recovered-{stamp}{out.suffix or '.nc'}"),
                  Path(tempfile.gettempdir()) / f"bayesirt-{stamp}-{out.stem}.nc"]
    for candidate in candidates:
        try:
            path = save(result, candidate)
        except OSError:
            continue
        echo(f"could not write {out} ({problem}); the posterior was saved to {path} instead")
        return path, problem
    raise InputError(f"{out}: the posterior could not be saved ({problem}), nor in "
                     f"{candidates[0].parent} or {candidates[1].parent}")


def fit_and_save(
    rng_key: Any,
    data_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    echo: Any = print,
    **config: Any,
) -> dict[str, Any]:
    """Fit by NUTS and save the posterior, checking ``out`` BEFORE sampling.

    The output path (folder created if missing, writable, enough free disk space for the
    expected size) is checked before the data are even fitted, so a bad ``--out`` fails in
    seconds, not after the run. If saving still fails after sampling (the disk filled up,
    the folder vanished), the posterior is saved beside ``out`` or in the temp dir and the
    message says where: a finished fit is never lost.

    Parameters
    ----------
    rng_key : jax.Array
        PRNG key of the fit.
    data_path : path-like
        Anything :func:`bayesirt.data.load` reads.
    out : path-like
        Posterior file to write (``.nc``).
    echo : callable, default print
        Where progress lines go.
    **config
        :class:`bayesirt.inference.FitConfig` fields.

    Returns
    -------
    dict
        ``path`` (where the posterior is), ``problem`` (why ``out`` could not be written, or
        None), ``headline`` (convergence numbers), ``passed`` (thresholds met), ``text``
        (the printed summary).

    Raises
    ------
    InputError
        Bad data, configuration or output path (before sampling).
    """
    from bayesirt.inference import FitConfig, fit_summary
    from bayesirt.inference import fit as _fit
    from bayesirt.outputs import prepare_output

    out = Path(out)
    cfg = FitConfig(**config).validate()
    irt_data = _data.load(data_path)
    # Every check of the output happens here, before sampling: a fit of hours must not end
    # in "permission denied".
    prepare_output(out, what="posterior file", expected_bytes=_expected_posterior_bytes(
        irt_data, cfg.chains, cfg.draws, cfg.log_likelihood))
    echo(
        f"fitting {cfg.model} to {irt_data.n_obs:,} responses "
        f"({irt_data.n_models} models x {irt_data.n_train_items:,} items, "
        f"{irt_data.n_benchmarks} benchmarks): {cfg.chains} chains x "
        f"{cfg.warmup} warmup + {cfg.draws} draws, seed {cfg.seed}"
    )
    result = _fit(rng_key, irt_data, cfg)
    headline, text, passed = fit_summary(result)
    echo(text)
    path, problem = _save_with_fallback(result, out, echo=echo)
    if problem is None:
        # MB = 10^6 bytes, as the diagnostic report writes it.
        echo(f"posterior written to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return {"path": path, "problem": problem, "headline": headline, "passed": passed,
            "text": text}


def check_bundle_posterior(posterior_path: str | os.PathLike) -> str | None:
    """Convergence verdict of a posterior about to be bundled.

    Parameters
    ----------
    posterior_path : path-like
        A posterior NetCDF (DataTree) or a flat artifact.

    Returns
    -------
    str or None
        None when the posterior passes the diagnostics' thresholds; otherwise one line
        naming what failed and the worst parameter.
    """
    from bayesirt.diagnostics import convergence_summary
    from bayesirt.posteriors import load

    path = Path(posterior_path)
    with open(path, "rb") as fh:
        if fh.read(3) == b"CDF":
            return (f"{path} is a flat artifact: it carries no sampler statistics, so its "
                    "convergence cannot be checked (bundle the posterior NetCDF instead)")
    tree = load(path)
    try:
        summary = convergence_summary(tree, n_worst=1)
    finally:
        tree.close()
    if summary["passed"]:
        return None
    worst = summary["worst"][0]["name"] if summary["worst"] else "?"
    return (f"{path} did not pass the convergence checks ({'; '.join(summary['failures'])}); "
            f"worst parameter {worst}")


def bundle(
    posterior_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    strict: bool = False,
    **options: Any,
) -> Any:
    """Build the submission ZIP, warning (or, ``strict``, refusing) when the fit did not converge.

    Parameters
    ----------
    posterior_path, out : path-like
        Posterior NetCDF (or flat artifact) and the ZIP to write.
    strict : bool, default False
        Refuse a posterior that fails the convergence checks.
    **options
        Keyword arguments of :func:`bayesirt.submission.build_bundle`.

    Returns
    -------
    bayesirt.submission.BundleInfo

    Raises
    ------
    InputError
        With ``strict``, when the posterior fails the convergence checks.
    """
    import warnings

    from bayesirt.outputs import prepare_output
    from bayesirt.submission import build_bundle

    prepare_output(out, what="submission ZIP")
    problem = check_bundle_posterior(posterior_path)
    if problem is not None:
        if strict:
            raise InputError(f"{problem}; refusing to bundle it (--strict)")
        warnings.warn(f"{problem}; bundling it anyway (--strict refuses)", InputWarning,
                      stacklevel=2)
    return build_bundle(posterior_path, out, **options)


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


# --- batch fitting and comparison (bayesirt.batch) ------------------------------------------


def batch(
    plan_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    retries: int = 0,
    progress: bool = True,
    echo: Any = print,
) -> Any:
    """Run every fit of a TOML plan on Dask, skipping those ``out`` already holds.

    Parameters
    ----------
    plan_path : path-like
        The plan (see :mod:`bayesirt.batch.plan`); validated completely, data sets
        included, before any fit starts.
    out : path-like
        Output folder: ``<out>/<fit name>/posterior.nc`` + ``summary.json`` (or
        ``failed.json``) per fit.
    workers : int, optional
        Processes of the local Dask cluster (default: one per core).
    scheduler : str, optional
        Address of an existing Dask scheduler to run on instead.
    retries : int, default 0
        Local cluster: how often a fit whose worker died is tried again before it is
        recorded as failed.
    progress : bool, default True
        Progress bar over the fits.
    echo : callable, default print

    Returns
    -------
    bayesirt.batch.BatchReport

    Raises
    ------
    InputError
        A bad plan (one line naming the line and key), output folder or option.
    """
    from bayesirt.batch import load_plan, run_batch

    plan = load_plan(plan_path)
    return run_batch(plan, out, workers=workers, scheduler=scheduler, retries=retries,
                     progress=progress, echo=echo)


def compare(
    batch_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    json_out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Compare a batch's fits (PSIS-LOO, held-out metrics, verdicts, seed spread).

    Parameters
    ----------
    batch_dir : path-like
        A folder written by :func:`batch`.
    out : path-like, optional
        Self-contained HTML page to write.
    json_out : path-like, optional
        The same numbers as JSON.

    Returns
    -------
    dict
        :func:`bayesirt.batch.compare.compare_batch`'s result.

    Raises
    ------
    InputError
        If ``batch_dir`` holds no batch fits, or an output path is unusable.
    """
    from bayesirt.batch.compare import collect, compare_batch
    from bayesirt.batch.files import write_json
    from bayesirt.batch.page import write_page
    from bayesirt.outputs import prepare_output

    collect(batch_dir)  # a wrong folder is refused before any output path is created
    for path, what in ((out, "comparison page"), (json_out, "comparison JSON")):
        if path is not None:
            prepare_output(path, what=what)
    result = compare_batch(batch_dir)
    if out is not None:
        write_page(result, out)
    if json_out is not None:
        write_json(json_out, result)
    return result


# --- ability scores of a saved posterior (bayesirt.abilities) -------------------------------


def abilities(
    posterior_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    by_benchmark: bool = False,
    fmt: str = "table",
    top_k: int = 10,
    interval: float = 0.9,
    json_out: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    echo: Any = print,
) -> Path:
    """Write a posterior's ability table (or the track-2 scores), checking every output first.

    Parameters
    ----------
    posterior_path : path-like
        Posterior NetCDF written by ``bayesirt fit`` (any registered model).
    out : path-like
        CSV to write: the ability table (``fmt="table"``: mean, sd, interval, n_responses,
        observed, rank and its interval, ``p_top{top_k}``) or the competition's
        ``model_id,ability_score`` (``fmt="track2"``).
    by_benchmark : bool, default False
        One row per (model, benchmark), ranked within each benchmark.
    fmt : {"table", "track2"}
    top_k : int, default 10
    interval : float, default 0.9
        Mass of the central intervals.
    json_out : path-like, optional
        Also write the rows as JSON records with the posterior's provenance.
    plot : path-like, optional
        Also write the ranked forest of the general ability (PNG).
    echo : callable or None, default print
        Receives the summary (top 5 models with intervals).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    InputError
        A file that is not a bayesirt posterior, a bad option or an unusable output path
        (checked before the posterior is read).
    """
    from bayesirt.abilities import run_abilities
    from bayesirt.outputs import prepare_output

    for path, what in ((out, "abilities CSV"), (json_out, "abilities JSON"),
                       (plot, "abilities plot")):
        if path is not None:
            prepare_output(path, what=what)
    return run_abilities(posterior_path, out, by_benchmark=by_benchmark, fmt=fmt, top_k=top_k,
                         interval=interval, json_out=json_out, plot=plot, echo=echo)


def heldout(
    rng_key: Any,
    data_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    **options: Any,
) -> dict[str, Any]:
    """Leave-one-benchmark-out on a data folder, as the streaming platform scores it.

    See :func:`bayesirt.submission.heldout_run.run_heldout` (options: ``benchmarks``,
    ``scopes``, ``seeds``, ``min_items``, ``max_draws``, ``echo`` and FitConfig fields).

    Returns
    -------
    dict
        ``records``, ``fits``, ``table`` and the written ``records_path``, ``table_path``,
        ``plot_path``.
    """
    from bayesirt.submission.heldout_run import run_heldout

    return run_heldout(rng_key, data_path, out_dir, **options)
