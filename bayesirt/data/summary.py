"""A data set described in a few readable lines (``bayesirt info``).

Part of :mod:`bayesirt.data` (see its docstring: what is read, how errors are said, and why
only numpy, pandas and the standard library may be imported).
"""

from __future__ import annotations

import numpy as np

from .container import IRTData


def summarize(data: IRTData) -> str:
    """Describe a data set in a few readable lines (used by ``bayesirt info``).

    Parameters
    ----------
    data : IRTData

    Returns
    -------
    str
        Multi-line text: counts of models, items (train / test), benchmarks, categories and
        observed cells; overall density (obs / (training models x training items)); a
        per-benchmark table (models seen, train / test items, responses, density over the
        models seen on the benchmark, base rate); test pairs (and how many have models with
        no training responses); the embedding dimension.
    """
    n_test_items = data.n_items - data.n_train_items
    n_test_models = data.n_models - data.n_train_models
    cells = data.n_train_models * data.n_train_items
    density = data.n_obs / cells if cells else float("nan")
    base = float(data.response.mean()) if data.n_obs else float("nan")
    lines = [
        f"data:        {data.source}",
        f"fingerprint: {data.fingerprint[:16] or '-'}",
        f"models:      {data.n_models:,}"
        + (f" ({data.n_train_models:,} with training responses, {n_test_models:,} test-only)"
           if n_test_models else ""),
        f"items:       {data.n_items:,} ({data.n_train_items:,} train / {n_test_items:,} test)",
        f"benchmarks:  {data.n_benchmarks:,}",
        f"categories:  {data.n_categories:,}",
        f"observed:    {data.n_obs:,} training responses; density {density:.3f} "
        f"(obs / (models x train items)); base rate {base:.3f}",
    ]
    if data.test_model_idx is not None:
        unknown = int(np.count_nonzero(data.test_model_idx >= data.n_train_models))
        lines.append(f"test pairs:  {data.n_test:,} ({unknown:,} with models unseen in training)")
    else:
        lines.append("test pairs:  none (no test folder)")
    emb = data.item_embeddings
    lines.append(f"embeddings:  {'none' if emb is None else f'{emb.shape[1]}-d'}")

    obs_bench = data.item_benchmark[data.item_idx]
    items_bench = np.bincount(data.item_benchmark[: data.n_train_items],
                              minlength=data.n_benchmarks)
    test_bench = np.bincount(data.item_benchmark[data.n_train_items:],
                             minlength=data.n_benchmarks)
    obs_count = np.bincount(obs_bench, minlength=data.n_benchmarks)
    ones = np.bincount(obs_bench, weights=data.response.astype(np.float64),
                       minlength=data.n_benchmarks)
    seen = np.zeros((data.n_benchmarks, max(data.n_train_models, 1)), dtype=bool)
    seen[obs_bench, data.model_idx] = True
    models_bench = seen.sum(axis=1)
    width = max([len("benchmark")] + [len(b) for b in data.benchmark_ids])
    lines.append("")
    lines.append(
        f"{'benchmark':<{width}}  {'models':>6}  {'train items':>11}  {'test items':>10}  "
        f"{'responses':>10}  {'density':>7}  {'base rate':>9}"
    )
    for k, name in enumerate(data.benchmark_ids):
        denom = models_bench[k] * items_bench[k]
        dens = f"{obs_count[k] / denom:.3f}" if denom else "-"
        rate = f"{ones[k] / obs_count[k]:.3f}" if obs_count[k] else "-"
        lines.append(
            f"{name:<{width}}  {models_bench[k]:>6,}  {items_bench[k]:>11,}  "
            f"{test_bench[k]:>10,}  {obs_count[k]:>10,}  {dens:>7}  {rate:>9}"
        )
    return "\n".join(lines)
