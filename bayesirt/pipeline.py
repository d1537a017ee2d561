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
from pathlib import Path
from typing import Any

import numpy as np

from bayesirt import data as _data


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
        A file written by :func:`save_posterior` (NetCDF4 DataTree) or by
        :func:`bayesirt.posteriors.write_flat` (NetCDF3 flat artifact).
    max_draws : int, optional
        Thin to at most this many draws (evenly spaced).

    Returns
    -------
    bayesirt.predictive.PosteriorDraws
    """
    from bayesirt import predictive
    from bayesirt.posteriors import write_flat

    path = Path(posterior_path)
    if not path.is_file():
        raise ValueError(f"{path}: no such posterior file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:3] == b"CDF":  # NetCDF3 classic: already the flat artifact
        return predictive.load_flat(path)
    with tempfile.TemporaryDirectory(prefix="bayesirt-") as tmp:
        flat = write_flat(path, Path(tmp) / "flat.nc", max_draws=max_draws)
        return predictive.load_flat(flat)


def _test_inputs(test_dir: str | os.PathLike, train_dir: str | os.PathLike | None) -> Any:
    """Parse the test pairs and new items with the package's one parser."""
    test_dir = Path(test_dir)
    if train_dir is None:
        sibling = test_dir.parent / "train"
        if not sibling.is_dir():
            raise ValueError(
                f"{test_dir}: cannot find the train dir beside it ({sibling}); pass --train-dir"
            )
        train_dir = sibling
    return _data.load(train_dir, test_dir)


def _new_items(draws: Any, data: Any) -> dict[str, Any]:
    """Describe every item the posterior does not know (test items, unfitted train items)."""
    from bayesirt import predictive

    known = set(draws.item_ids)
    rows = [j for j, item in enumerate(data.item_ids) if item not in known]
    emb = None if data.item_embeddings is None else data.item_embeddings[rows]
    return predictive.new_items_from_arrays(
        [data.item_ids[j] for j in rows],
        [data.benchmark_ids[data.item_benchmark[j]] for j in rows],
        [data.category_ids[data.item_category[j]] for j in rows],
        emb,
    )


def _evidence(draws: Any, data: Any) -> tuple | None:
    """Training responses whose model or item the posterior lacks (folded in as evidence)."""
    known_models, known_items = set(draws.model_ids), set(draws.item_ids)
    model_unknown = np.array([m not in known_models for m in data.model_ids], dtype=bool)
    item_unknown = np.array([j not in known_items for j in data.item_ids], dtype=bool)
    extra = model_unknown[data.model_idx] | item_unknown[data.item_idx]
    if not extra.any():
        return None
    model_ids = np.asarray(data.model_ids, dtype=object)
    item_ids = np.asarray(data.item_ids, dtype=object)
    return (model_ids[data.model_idx[extra]], item_ids[data.item_idx[extra]],
            np.asarray(data.response[extra], dtype=np.int8))


def _options(data: Any, neighbours: bool) -> dict[str, Any]:
    """Keyword options for the predictive engine.

    The neighbour prior needs item embeddings; without them it is skipped, as the
    submission's glue does, so the two stay equal.
    """
    if not neighbours or data.item_embeddings is None:
        return {}
    n = data.n_train_items
    responses = (np.asarray(data.model_ids, dtype=object)[data.model_idx],
                 np.asarray(data.item_ids, dtype=object)[data.item_idx],
                 np.asarray(data.response, dtype=np.int8))
    return {"neighbours": (list(data.item_ids[:n]), np.asarray(data.item_embeddings[:n]),
                           responses)}


def _prepare(posterior_path, test_dir, train_dir, labeled) -> tuple:
    """Draws, parsed data, the test pairs' ids and the revealed labels."""
    draws = load_draws(posterior_path)
    data = _test_inputs(test_dir, train_dir)
    model_ids = np.asarray(data.model_ids, dtype=object)[data.test_model_idx]
    item_ids = np.asarray(data.item_ids, dtype=object)[data.test_item_idx]
    labels = None if labeled is None else _data.read_labeled_pairs(labeled)
    return draws, data, model_ids, item_ids, labels


def _engine_inputs(draws, data, labels, neighbours: bool, progress: bool) -> dict[str, Any]:
    """Keyword arguments shared by ``predict_pairs`` and ``score_pairs``."""
    return {
        "new_items": _new_items(draws, data),
        "labels": labels,
        "evidence": _evidence(draws, data),
        "progress": progress,
        **_options(data, neighbours),
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
        raise ValueError(f"budget must be a positive number of pairs, got {budget}")
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
