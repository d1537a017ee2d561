"""Leave-one-benchmark-out on a data folder: fit without each benchmark, replay, report.

For each held-out benchmark: the posterior is fitted on the other benchmarks (or reused
from ``out/fits/`` when its data fingerprint matches), the benchmark's responses (training
responses, plus ``reference/ground_truth.csv`` where the folder has one) become the
platform's pairs (:func:`bayesirt.submission.heldout.make_task`), and the posterior
predicts every scored pair at every budget from the shared labels, its items being new
items of a benchmark the posterior does not know. Results: ``records.jsonl`` (one line per
predictor x budget x benchmark x scope x seed), ``heldout.md`` (ALC and Brier tables) and
``learning_curves.png``.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayesirt import data as _data
from bayesirt.errors import InputError, InputWarning
from bayesirt.submission.heldout import BASELINES, BUDGETS, alc, make_task, run_task


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def benchmark_responses(data: Any, root: Path, benchmark: str
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every known response on ``benchmark``: training ones, then the reference labels."""
    k = data.benchmark_ids.index(benchmark)
    on = data.item_benchmark[data.item_idx] == k
    m = np.asarray(data.model_ids, dtype=object)[data.model_idx[on]]
    i = np.asarray(data.item_ids, dtype=object)[data.item_idx[on]]
    y = data.response[on].astype(np.int8)
    gt = root / "reference" / "ground_truth.csv"
    if gt.is_file():
        gm, gi, gy = _data.read_labeled_pairs(gt)
        bench_of = dict(zip(data.item_ids, data.item_benchmark.tolist(), strict=True))
        keep = np.asarray([bench_of.get(str(x), -1) == k for x in gi], bool)
        m, i, y = (np.concatenate([m, gm[keep]]), np.concatenate([i, gi[keep]]),
                   np.concatenate([y, gy[keep]]))
    return m, i, y


def _train_accuracy(rest: Any) -> dict[str, float]:
    n = np.bincount(rest.model_idx, minlength=rest.n_models)
    s = np.bincount(rest.model_idx, weights=rest.response, minlength=rest.n_models)
    return {m: float(s[j] / n[j]) for j, m in enumerate(rest.model_ids) if n[j]}


def fit_without(rng_key: Any, rest: Any, path: Path, echo: Callable[[str], None],
                 config: dict[str, Any]) -> dict[str, Any]:
    """Fit ``rest`` (or reuse ``path`` when it was fitted on the same data); its headline."""
    from bayesirt.posteriors import load, posterior_attrs

    if path.is_file():
        tree = load(path)
        try:
            attrs = posterior_attrs(tree)
        finally:
            tree.close()
        if str(attrs.get("fingerprint", "")) == rest.fingerprint:
            echo(f"reusing {path} (fitted on the same data)")
            record = path.with_suffix(".json")
            saved = json.loads(record.read_text()) if record.is_file() else {}
            return {**saved, "reused": True}
    from bayesirt.inference import FitConfig, fit_summary
    from bayesirt.inference import fit as _fit
    from bayesirt.posteriors import save

    cfg = FitConfig(**config).validate()
    echo(f"fitting {cfg.model} on {rest.source}: {rest.n_obs:,} responses, "
         f"{cfg.chains} chains x {cfg.warmup} warmup + {cfg.draws} draws")
    result = _fit(rng_key, rest, cfg)
    headline, text, passed = fit_summary(result)
    echo(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    save(result, path)
    scalars = {k: (v if isinstance(v, str) else float(v)) for k, v in headline.items()
               if isinstance(v, str) or np.isscalar(v)}
    scalars["steps_per_draw"] = float(np.mean(result.sample_stats["n_steps"]))
    record = {"reused": False, "passed": bool(passed),
              "wall_s": float(result.provenance["sampling_wall_seconds"]), "headline": scalars}
    # Beside the posterior, so a later run that reuses the fit still reports its numbers.
    path.with_suffix(".json").write_text(json.dumps(record))
    return record


def run_heldout(rng_key: Any, data_path: str | os.PathLike, out_dir: str | os.PathLike, *,
                benchmarks: Sequence[str] | None = None, scopes: Sequence[str] = ("pair",),
                seeds: Sequence[int] = (0,), min_items: int = 80,
                max_draws: int | None = 1000, echo: Callable[[str], None] = print,
                **fit_config: Any) -> dict[str, Any]:
    """Leave-one-benchmark-out on a data folder (see the module docstring).

    Parameters
    ----------
    rng_key : jax.Array
        Key of the fits (folded with the benchmark's position).
    data_path : path-like
        A data root (``train/``, optional ``reference/ground_truth.csv``).
    out_dir : path-like
        Where fits, records, tables and the plot go.
    benchmarks : sequence of str, optional
        Benchmarks to hold out (default: all).
    scopes : sequence of {"pair", "item"}
    seeds : sequence of int
        Seeds of the split and label order (the fit is one per benchmark).
    min_items : int
        Pairs need this many distinct items (the platform: 80).
    max_draws : int or None
        Posterior draws used to predict (evenly thinned).
    echo : callable
        Progress lines.
    **fit_config
        :class:`bayesirt.inference.FitConfig` fields.

    Returns
    -------
    dict
        ``records`` (list of dict), ``fits`` (per benchmark), ``table`` (markdown), and
        the paths ``records_path``, ``table_path``, ``plot_path``.
    """
    import jax

    from bayesirt import predictive
    from bayesirt.pipeline import load_draws
    from bayesirt.submission.heldout_report import plot_curves, table

    root = Path(data_path)
    out = Path(out_dir)
    data = _data.load(root)
    todo = list(benchmarks or data.benchmark_ids)
    for b in todo:
        if b not in data.benchmark_ids:
            raise InputError(f"{root}: no benchmark {b!r} (has {list(data.benchmark_ids)})")
    # Only once the inputs are known good: a refused run leaves nothing behind.
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    fits: dict[str, Any] = {}
    for b in todo:
        rest = _data.without_benchmark(data, b)
        path = out / "fits" / f"without-{_safe(b)}.nc"
        key = jax.random.fold_in(rng_key, data.benchmark_ids.index(b))
        fits[b] = fit_without(key, rest, path, echo, fit_config)
        draws = load_draws(path, max_draws=max_draws)
        m, i, y = benchmark_responses(data, root, b)
        new_items = {str(item): predictive.ItemInfo(benchmark_id=b) for item in np.unique(i)}
        acc = _train_accuracy(rest)

        unknown = sorted(set(m.tolist()) - set(draws.model_ids))
        if unknown:
            echo(f"{len(unknown)} model(s) answered only {b} (e.g. {unknown[0]!r}): the fit "
                 "without it does not know them; their ability there starts from N(0, 1)")

        def predict(pm, pi, labels, draws=draws, new_items=new_items):
            with warnings.catch_warnings():
                # Said once above: models that answered only the held-out benchmark.
                warnings.simplefilter("ignore", InputWarning)
                return predictive.predict_pairs(draws, list(pm), list(pi),
                                                new_items=new_items, labels=labels)

        for scope in scopes:
            for seed in seeds:
                task = make_task(m, i, y, b, scope=scope, seed=int(seed), min_items=min_items)
                records += run_task(task, predict, acc, BUDGETS, progress=echo)
    records_path = out / "records.jsonl"
    with open(records_path, "w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    md = table(records, fits)
    table_path = out / "heldout.md"
    table_path.write_text(md)
    plot_path = plot_curves(records, out / "learning_curves.png")
    return {"records": records, "fits": fits, "table": md, "records_path": records_path,
            "table_path": table_path, "plot_path": plot_path}


__all__ = ["BASELINES", "alc", "benchmark_responses", "fit_without", "run_heldout"]
