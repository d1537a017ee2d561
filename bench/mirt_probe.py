"""Is there more than one ability dimension inside a benchmark? A cheap probe for the
multidimensional-abilities issue, before hier2pl gets ``--dims``.

A per-benchmark multidimensional 2PL is fitted by SVI (mean-field normal guide, numpyro
``AutoNormal``) for D = 1, 2, 3 on a data set's training responses plus the revealed labels
of its test items (``reveal/k{k}_revealed.csv``), and the unrevealed test pairs are scored as
``docs/peers.md`` does (log-loss clipped to [1e-7, 1 - 1e-7], ROC-AUC). The posterior
predictive probability is the mean over guide draws. The model, for model m, item j of
benchmark b:

    logit P(y = 1) = a_j . theta_{m, b} - d_j
    theta_{m, b} ~ N(0, I_D)                      (abilities per (model, benchmark) cell)
    d_j ~ N(mu_b, sigma_b)                        (difficulty, benchmark-level prior)
    log a_j1 ~ N(nu_b, s_b)                        (first loading positive: fixes the sign)
    a_jk ~ N(0, tau_bk), k >= 2                    (extra loadings shrunk by tau_bk ~ N+(0.5))

It is not hier2pl (no general ability, no population of benchmarks, SVI not NUTS), so only
the differences between D = 1 and D > 1 here say something: how much a second direction of
ability within a benchmark lowers the log-loss on new items once k of their labels are
known. The rotation of dimensions 2+ is not identified; the predictions do not depend on it.

Usage::

    python bench/mirt_probe.py DATA_ROOT [--dims 1 2 3] [--ks 0 3 10] [--steps 4000]
        [--out bench/results/mirt_probe_NAME.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bayesirt import data as bdata  # noqa: E402


def mirt(cell, item, bench_of_item, n_cells, n_items, n_benchmarks, dims, y=None,
         model_category=None, n_model_categories=0, multi_of_item=None, n_multi=0):
    """Per-benchmark multidimensional 2PL (see the module docstring).

    Parameters
    ----------
    cell, item : int arrays, (n_obs,)
        (model, benchmark) cell and item of each response.
    bench_of_item : int array, (n_items,)
    n_cells, n_items, n_benchmarks, dims : int
    y : int array, (n_obs,), optional
    model_category : int array, (n_obs,), optional
        (model, category) cell of each response, for category abilities: an offset
        gamma_{m,c} ~ N(0, omega_b) per (model, category) of a multi-category benchmark
        (``n_model_categories`` of them; ``multi_of_item`` the item's multi-category
        benchmark slot, -1 for none, ``n_multi`` such benchmarks).
    """
    with numpyro.plate("benchmarks", n_benchmarks):
        mu_b = numpyro.sample("mu_difficulty", dist.Normal(0.0, 3.0))
        sigma_b = numpyro.sample("sigma_difficulty", dist.HalfNormal(2.0))
        nu_b = numpyro.sample("mu_log_discrimination", dist.Normal(0.0, 1.0))
        s_b = numpyro.sample("sigma_log_discrimination", dist.HalfNormal(0.5))
        if dims > 1:
            with numpyro.plate("extra_dims", dims - 1, dim=-2):
                tau = numpyro.sample("tau_extra", dist.HalfNormal(0.5))  # (dims-1, B)
    with numpyro.plate("cells", n_cells, dim=-2), numpyro.plate("dims", dims, dim=-1):
        theta = numpyro.sample("theta", dist.Normal(0.0, 1.0))  # (n_cells, dims)
    with numpyro.plate("items", n_items):
        # Non-centred: most items are thin (tens of responses), so their difficulty and
        # loading are set by the benchmark-level prior as much as by their own labels.
        d_raw = numpyro.sample("difficulty_raw", dist.Normal(0.0, 1.0))
        a1_raw = numpyro.sample("log_a1_raw", dist.Normal(0.0, 1.0))
        difficulty = mu_b[bench_of_item] + sigma_b[bench_of_item] * d_raw
        loadings = [jnp.exp(nu_b[bench_of_item] + s_b[bench_of_item] * a1_raw)]
        if dims > 1:
            with numpyro.plate("extra_dims_items", dims - 1, dim=-2):
                extra_raw = numpyro.sample("a_extra_raw", dist.Normal(0.0, 1.0))
            extra = tau[:, bench_of_item] * extra_raw  # (dims-1, n_items)
            loadings += [extra[k] for k in range(dims - 1)]
        a = jnp.stack(loadings, axis=-1)  # (n_items, dims)
    ability = theta[cell][:, 0]
    if n_model_categories:
        with numpyro.plate("multi", n_multi):
            omega = numpyro.sample("category_ability_scale", dist.HalfNormal(0.5))
        with numpyro.plate("model_categories", n_model_categories):
            gamma_raw = numpyro.sample("category_ability_raw", dist.Normal(0.0, 1.0))
        slot = multi_of_item[item]
        scale = jnp.where(slot >= 0, omega[jnp.maximum(slot, 0)], 0.0)
        ability = ability + scale * gamma_raw[model_category]
    eta = (a[item][:, 0] * ability
           + jnp.sum(a[item][:, 1:] * theta[cell][:, 1:], axis=-1) - difficulty[item])
    with numpyro.plate("obs", cell.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=eta), obs=y)


def predictive_probability(guide, params, rng_key, cell, item, dims, model_category=None,
                           n_draws=200):
    """Mean over guide draws of P(correct) for each (cell, item) pair, (n_pairs,)."""
    draws = guide.sample_posterior(rng_key, params, sample_shape=(n_draws,))
    return np.asarray(_probabilities(draws, cell, item, dims, model_category))


def _probabilities(draws, cell, item, dims, model_category=None):
    bench = _PROBE["bench_of_item"]
    mu = draws["mu_difficulty"][:, bench]
    sd = draws["sigma_difficulty"][:, bench]
    difficulty = mu + sd * draws["difficulty_raw"]
    a1 = jnp.exp(draws["mu_log_discrimination"][:, bench]
                 + draws["sigma_log_discrimination"][:, bench] * draws["log_a1_raw"])
    ability = draws["theta"][:, cell, 0]
    if model_category is not None:
        slot = _PROBE["multi_of_item"][item]
        omega = draws["category_ability_scale"][:, jnp.maximum(slot, 0)]
        scale = jnp.where(slot >= 0, omega, 0.0)
        ability = ability + scale * draws["category_ability_raw"][:, model_category]
    eta = a1[:, item] * ability - difficulty[:, item]
    for k in range(1, dims):
        ak = draws["tau_extra"][:, k - 1, bench] * draws["a_extra_raw"][:, k - 1, :]
        eta = eta + ak[:, item] * draws["theta"][:, cell, k]
    return jnp.mean(jax.nn.sigmoid(eta), axis=0)


_PROBE: dict = {}


def log_loss(y, p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def auc(y, p):
    r = rankdata(p)
    n1 = y.sum()
    n0 = y.size - n1
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--ks", type=int, nargs="+", default=[0, 3, 10])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--category-abilities", action="store_true",
                        help="add a (model, category) ability offset in multi-category "
                             "benchmarks (D = 1 only)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    d = bdata.load(args.data)
    n_bench = len(d.benchmark_ids)
    n_models, n_items = len(d.model_ids), len(d.item_ids)
    model_pos = {m: i for i, m in enumerate(d.model_ids)}
    item_pos = {m: i for i, m in enumerate(d.item_ids)}
    gm, gi, gy = bdata.read_labeled_pairs(args.data / "reference/ground_truth.csv")
    truth = {(m, i): int(y) for m, i, y in zip(gm, gi, gy, strict=True)}
    test_m = np.array([d.model_ids[k] for k in d.test_model_idx], dtype=object)
    test_i = np.array([d.item_ids[k] for k in d.test_item_idx], dtype=object)
    bench_of_item = np.asarray(d.item_benchmark)
    _PROBE["bench_of_item"] = jnp.asarray(bench_of_item)

    def cells(models, items):
        return models * n_bench + bench_of_item[items]

    # Category abilities: one offset per (model, category) of a multi-category benchmark.
    cats_per_bench = np.bincount(np.asarray(d.category_benchmark), minlength=n_bench)
    multi_benchmarks = np.flatnonzero(cats_per_bench >= 2)
    multi_slot = np.full(n_bench, -1)
    multi_slot[multi_benchmarks] = np.arange(multi_benchmarks.size)
    multi_of_item = multi_slot[bench_of_item]
    _PROBE["multi_of_item"] = jnp.asarray(multi_of_item)
    n_categories = len(d.category_ids)
    item_category = np.asarray(d.item_category)

    def model_categories(models, items):
        return models * n_categories + item_category[items]

    records = []
    for k in args.ks:
        rm, ri, ry = bdata.read_labeled_pairs(args.data / f"reveal/k{k}_revealed.csv")
        revealed = set(zip(rm, ri, strict=True))
        obs_m = np.concatenate([d.model_idx, [model_pos[m] for m in rm]]).astype(np.int32)
        obs_i = np.concatenate([d.item_idx, [item_pos[i] for i in ri]]).astype(np.int32)
        obs_y = np.concatenate([d.response, ry]).astype(np.int32)
        keep = np.array([(m, i) not in revealed for m, i in zip(test_m, test_i, strict=True)])
        sm = np.array([model_pos[m] for m in test_m[keep]], dtype=np.int32)
        si = np.array([item_pos[i] for i in test_i[keep]], dtype=np.int32)
        sy = np.array([truth[(m, i)] for m, i in zip(test_m[keep], test_i[keep], strict=True)])
        for dims in args.dims:
            t0 = time.perf_counter()
            kwargs = dict(bench_of_item=jnp.asarray(bench_of_item), n_cells=n_models * n_bench,
                          n_items=n_items, n_benchmarks=n_bench, dims=dims)
            scored_mc = None
            if args.category_abilities:
                kwargs.update(model_category=jnp.asarray(model_categories(obs_m, obs_i)),
                              n_model_categories=n_models * n_categories,
                              multi_of_item=jnp.asarray(multi_of_item),
                              n_multi=int(multi_benchmarks.size))
                scored_mc = jnp.asarray(model_categories(sm, si))
            guide = AutoNormal(mirt, init_scale=0.05)
            svi = SVI(mirt, guide, numpyro.optim.Adam(args.lr), Trace_ELBO())
            result = svi.run(jax.random.PRNGKey(args.seed), args.steps,
                             jnp.asarray(cells(obs_m, obs_i)), jnp.asarray(obs_i),
                             y=jnp.asarray(obs_y), progress_bar=False, **kwargs)
            p = predictive_probability(guide, result.params, jax.random.PRNGKey(args.seed + 1),
                                       jnp.asarray(cells(sm, si)), jnp.asarray(si), dims,
                                       scored_mc)
            rec = dict(k=k, dims=dims, category_abilities=bool(args.category_abilities),
                       log_loss=log_loss(sy, p), auc=auc(sy, p),
                       n_scored=int(sy.size), elbo_loss_last=float(result.losses[-100:].mean()),
                       wall_s=round(time.perf_counter() - t0, 1))
            if dims > 1:
                tau = guide.median(result.params)["tau_extra"]
                rec["tau_extra_median"] = np.round(np.asarray(tau), 2).tolist()
            if args.category_abilities:
                omega = guide.median(result.params)["category_ability_scale"]
                rec["category_ability_scale_median"] = dict(zip(
                    [d.benchmark_ids[b] for b in multi_benchmarks],
                    np.round(np.asarray(omega), 2).tolist(), strict=True))
            records.append(rec)
            print(json.dumps(rec), flush=True)
    if args.out:
        write_record(args, records)
    return 0


def write_record(args, records):
    lines = [f"# Multidimensional 2PL probe on {args.data.name} (bench/mirt_probe.py)", "",
             f"Machine: {platform.machine()}, {jax.device_count()} jax device(s) "
             f"({jax.devices()[0].platform}), python {platform.python_version()}. SVI, "
             f"AutoNormal, Adam({args.lr}), {args.steps} steps, seed {args.seed}; predictions "
             "average 200 guide draws. Scored as docs/peers.md (unrevealed test pairs).", "",
             "| k | D | log-loss | AUC | vs D = 1 | wall s "
             "| extra-dimension scales (median, per benchmark) |",
             "|---|---|---|---|---|---|---|"]
    base = {r["k"]: r["log_loss"] for r in records if r["dims"] == 1}
    for r in records:
        rel = (f"{100 * (r['log_loss'] / base[r['k']] - 1):+.1f}%" if r["k"] in base else "")
        lines.append(f"| {r['k']} | {r['dims']} | {r['log_loss']:.4f} | {r['auc']:.4f} | {rel} "
                     f"| {r['wall_s']} | {r.get('tau_extra_median', '')} |")
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


if __name__ == "__main__":
    sys.exit(main())
