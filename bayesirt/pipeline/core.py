"""The core steps: load, fit, save, predict, acquire, bundle (see :mod:`bayesirt.pipeline`)."""

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


def expected_posterior_bytes(data: Any, chains: int, draws: int, log_likelihood: bool) -> int:
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
    prepare_output(out, what="posterior file", expected_bytes=expected_posterior_bytes(
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
