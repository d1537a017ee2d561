"""Robustness suite: data shapes the default ``hier2pl`` fit must handle.

Each member is a small data set built in memory: real subsets of the shared sets (benchmarks
dropped, 10-30% of the models kept, thinned to density 0.1, categories merged or split, a
benchmark with two categories of 10 and 500 items) and simulations from the model's prior at
the shape of a real set the defaults were not tuned on (8 benchmarks, 7-150 models per
benchmark, most models on one or two benchmarks, 2-5 categories of very unequal size),
scaled down in items so that one default fit takes a few minutes on 2 CPU cores.

For each member and seed the default fit (4 chains x 1500 warm-up + the model's default
draws at its default target_accept: 2000 at 0.99 for ``hier2pl`` since 2026-12-07, 1000 at
0.8 before; ``auto`` parameterisation) is scored over EVERY parameter: rank R-hat <= 1.01,
bulk- and tail-ESS >= 400, no divergences. Each fit appends one JSON record (with the block
diagnosis of ``bayesirt.inference.blame``) to ``--records``; ``--render`` turns the records
into ``bench/results/robustness.md``.

Usage::

    python bench/robustness.py --list
    python bench/robustness.py --members sim-unseen-shape --seeds 0 [--variant NAME]
    python bench/robustness.py --render

Variants (``--variant``) are the geometry levers measured on the suite; ``default`` is the
code as it stands. They patch module constants of ``bayesirt.models.inputs`` (or FitConfig
fields) for the one process, so the default code path is what ``default`` measures.
Variants measured with intermediate revisions are kept only as records (see the notes in
the results file): ``cat-k5`` (category means centred only in benchmarks with >= 5 categories),
``cat-pin-unshrunk`` (the pin ratio against the data's category spread, not shrunk to the
prior scale) and ``cat-pin-unshrunk+ta0.9``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "bayesirt" / "datasets" / "real_multibench_small"
FULL = ROOT.parent / "shared" / "data" / "real-multibench"
RECORDS = Path("/tmp/bayesirt-robustness/records.jsonl")
OUT = ROOT / "bench" / "results" / "robustness.md"


# ----------------------------------------------------------------------------- subsets
def subset(data, *, models=None, items=None, keep_obs=None, categories=None, source=""):
    """A training-only ``IRTData`` restricted to some models, items and responses.

    Parameters
    ----------
    data : IRTData
    models, items : ndarray of int, optional
        Training model / item indices kept (default all).
    keep_obs : ndarray of bool, shape (n_obs,), optional
        Responses kept (before the model/item filter).
    categories : tuple (category_ids, item_category, category_benchmark), optional
        A new category structure over ``data``'s training items (merge or split).
    source : str
        Name recorded in the data.
    """
    from bayesirt.data import IRTData

    nt = data.n_train_items
    cat_ids, item_cat, cat_bench = (
        categories if categories is not None
        else (data.category_ids, data.item_category[:nt], data.category_benchmark)
    )
    keep = np.ones(data.n_obs, bool) if keep_obs is None else keep_obs.copy()
    if models is not None:
        keep &= np.isin(data.model_idx, models)
    if items is not None:
        keep &= np.isin(data.item_idx, items)
    m_used = np.unique(data.model_idx[keep])
    j_used = np.unique(data.item_idx[keep])
    b_used = np.unique(data.item_benchmark[j_used])
    c_used = np.unique(np.asarray(item_cat)[j_used])
    m_map = {m: i for i, m in enumerate(m_used)}
    j_map = np.full(nt, -1)
    j_map[j_used] = np.arange(j_used.size)
    b_map = np.full(data.n_benchmarks, -1)
    b_map[b_used] = np.arange(b_used.size)
    c_map = np.full(len(cat_ids), -1)
    c_map[c_used] = np.arange(c_used.size)
    return IRTData(
        model_ids=tuple(data.model_ids[m] for m in m_used),
        item_ids=tuple(data.item_ids[j] for j in j_used),
        benchmark_ids=tuple(data.benchmark_ids[b] for b in b_used),
        category_ids=tuple(cat_ids[c] for c in c_used),
        model_idx=np.array([m_map[m] for m in data.model_idx[keep]], dtype=np.int32),
        item_idx=j_map[data.item_idx[keep]].astype(np.int32),
        response=data.response[keep],
        item_benchmark=b_map[data.item_benchmark[j_used]].astype(np.int32),
        item_category=c_map[np.asarray(item_cat)[j_used]].astype(np.int32),
        category_benchmark=b_map[np.asarray(cat_bench)[c_used]].astype(np.int32),
        source=source,
    )


_CACHE: dict[str, object] = {}


def _load(which: str):
    from bayesirt import data as _data

    if which not in _CACHE:
        _CACHE[which] = _data.load(SMALL if which == "small" else FULL)
    return _CACHE[which]


def _bench_items(data, name):
    k = data.benchmark_ids.index(name)
    return np.flatnonzero(data.item_benchmark[: data.n_train_items] == k)


def _sample_items(rng, data, per_benchmark: dict[str, int]):
    """Items drawn per benchmark (stratified by category: each category keeps its share)."""
    nt = data.n_train_items
    out = []
    for name, n in per_benchmark.items():
        pool = _bench_items(data, name)
        if n >= pool.size:
            out.append(pool)
            continue
        cats = data.item_category[pool]
        for c in np.unique(cats):
            members = pool[cats == c]
            take = max(2, int(round(n * members.size / pool.size)))
            out.append(rng.choice(members, size=min(take, members.size), replace=False))
    del nt
    return np.sort(np.concatenate(out))


def real_small_drop():
    """Small set without mmlu_pro and bfcl: three single-category benchmarks, 26 models."""
    d = _load("small")
    items = np.concatenate([_bench_items(d, b) for b in ("cruxeval_o", "gsm8k", "math_l5")])
    return subset(d, items=items, source="small minus mmlu_pro, bfcl")


def real_small_merge_split():
    """Small set, bfcl's 11 categories merged into 2, mmlu_pro's 14 into 3, cruxeval_o split
    into 2 random halves (a category level with nothing to find: its spread is ~0)."""
    d = _load("small")
    rng = np.random.default_rng(11)
    nt = d.n_train_items
    new_ids, new_bench, item_cat = [], [], np.empty(nt, np.int64)
    stem = {"biology", "chemistry", "computer science", "engineering", "math", "physics"}
    human = {"history", "law", "philosophy", "psychology", "economics"}
    for j in range(nt):
        cid = d.category_ids[d.item_category[j]]
        bench, cat = cid.split("/", 1)
        if bench == "bfcl":
            label = "bfcl/executable" if cat.startswith("executable") else "bfcl/ast"
        elif bench == "mmlu_pro":
            label = ("mmlu_pro/stem" if cat in stem else
                     "mmlu_pro/humanities" if cat in human else "mmlu_pro/other")
        elif bench == "cruxeval_o":
            label = f"cruxeval_o/half{int(rng.integers(2))}"
        else:
            label = cid
        if label not in new_ids:
            new_ids.append(label)
            new_bench.append(d.item_benchmark[j])
        item_cat[j] = new_ids.index(label)
    return subset(d, categories=(tuple(new_ids), item_cat, np.asarray(new_bench)),
                  source="small, categories merged/split")


def real_full_models():
    """Full set, 25% of the models (33 of 131, random), ~15% of the items per benchmark."""
    d = _load("full")
    rng = np.random.default_rng(12)
    models = rng.choice(d.n_train_models, size=33, replace=False)
    items = _sample_items(rng, d, {"bfcl": 220, "cruxeval_o": 100, "gsm8k": 160,
                                   "math_l5": 90, "mmlu_pro": 300})
    return subset(d, models=models, items=items, source="full, 25% of models")


def real_full_thin():
    """Full set, all 131 models, ~8% of the items, responses thinned at random to density 0.1
    (items then have ~4-7 responses each instead of 29-71)."""
    d = _load("full")
    rng = np.random.default_rng(13)
    items = _sample_items(rng, d, {"bfcl": 200, "cruxeval_o": 120, "gsm8k": 150,
                                   "math_l5": 110, "mmlu_pro": 500})
    in_items = np.isin(d.item_idx, items)
    n_models = d.n_train_models
    density = in_items.sum() / (n_models * items.size)
    keep = in_items & (rng.random(d.n_obs) < 0.1 / density)
    return subset(d, items=items, keep_obs=keep, source="full, thinned to density 0.1")


def real_full_cat_10_500():
    """Full set: mmlu_pro reduced to 500 math items + 10 history items (2 categories of very
    unequal size, 29 models), next to cruxeval_o (120 items) and bfcl (2 categories of 12 and
    60 items), ~60 models."""
    d = _load("full")
    rng = np.random.default_rng(14)
    nt = d.n_train_items
    cat = np.asarray([d.category_ids[c] for c in d.item_category[:nt]])
    pick = [
        rng.choice(np.flatnonzero(cat == "mmlu_pro/math"), 500, replace=False),
        rng.choice(np.flatnonzero(cat == "mmlu_pro/history"), 10, replace=False),
        rng.choice(np.flatnonzero(cat == "bfcl/java"), 12, replace=False),
        rng.choice(np.flatnonzero(cat == "bfcl/simple"), 60, replace=False),
        rng.choice(_bench_items(d, "cruxeval_o"), 120, replace=False),
    ]
    on = np.zeros(d.n_train_models, bool)
    bench_of_obs = d.item_benchmark[d.item_idx]
    for b in ("mmlu_pro", "cruxeval_o"):
        on[np.unique(d.model_idx[bench_of_obs == d.benchmark_ids.index(b)])] = True
    bfcl_models = np.unique(d.model_idx[bench_of_obs == d.benchmark_ids.index("bfcl")])
    on[rng.choice(bfcl_models, 20, replace=False)] = True
    return subset(d, models=np.flatnonzero(on), items=np.sort(np.concatenate(pick)),
                  source="full, mmlu_pro as 500 + 10 items")


# ----------------------------------------------------------------------------- simulations
def simulate_prior(rng, *, models_per_benchmark, category_sizes, n_models, name):
    """Draw a data set from ``hier2pl``'s prior at a given incidence and category shape.

    Like ``bayesirt.models.simulate.simulate(from_prior=True)`` (abilities standardised per
    benchmark over the models observed on it), but with the shape given, and with the
    benchmark-level values drawn from fixed weakly informative priors (mu_b ~ N(0, 3),
    sigma_b ~ N+(2.5), mu_a ~ N(0, 1), sigma_a ~ Gamma(2, 4), rho ~ Beta(2, 2), sigma_c ~
    N+(1)), not from today's population: about as wide, and kept so that the members' data
    stay the ones every record was measured on:
    ``models_per_benchmark[k]`` models on benchmark k, chosen with probability proportional
    to a per-model breadth weight (lognormal), so most models sit on one or two benchmarks
    and a few on many; ``category_sizes[k]`` items per category.
    """
    from bayesirt.data import IRTData

    n_bench = len(models_per_benchmark)
    breadth = rng.lognormal(0.0, 1.5, n_models)
    observed = np.zeros((n_models, n_bench), bool)
    for k, n_k in enumerate(models_per_benchmark):
        p = breadth / breadth.sum()
        observed[rng.choice(n_models, size=n_k, replace=False, p=p), k] = True
    for m in np.flatnonzero(~observed.any(axis=1)):  # every model somewhere (the largest)
        observed[m, int(np.argmax(models_per_benchmark))] = True
    mu_b = rng.normal(0.0, 3.0, n_bench)
    sigma_b = np.abs(rng.normal(0.0, 2.5, n_bench))
    mu_a = rng.normal(0.0, 1.0, n_bench)
    sigma_a = rng.gamma(2.0, 1.0 / 4.0, n_bench)
    rho = rng.beta(2.0, 2.0, n_bench)
    sigma_c = np.abs(rng.normal(0.0, 1.0, n_bench))
    general = rng.standard_normal(n_models)
    raw = rho * general[:, None] + np.sqrt(1 - rho**2) * rng.standard_normal((n_models, n_bench))
    ability = raw.copy()
    for k in range(n_bench):
        rows = observed[:, k]
        x = raw[rows, k] - raw[rows, k].mean()
        ability[rows, k] = x / x.std(ddof=1)
    item_bench, item_cat, cat_ids, cat_bench, diff, logd = [], [], [], [], [], []
    for k, sizes in enumerate(category_sizes):
        offsets = sigma_c[k] * rng.standard_normal(len(sizes)) if len(sizes) > 1 else [0.0]
        for c, n_c in enumerate(sizes):
            item_cat += [len(cat_ids)] * n_c
            cat_ids.append(f"b{k}/c{c}")
            cat_bench.append(k)
            item_bench += [k] * n_c
            diff.append(mu_b[k] + offsets[c] + sigma_b[k] * rng.standard_normal(n_c))
            logd.append(mu_a[k] + sigma_a[k] * rng.standard_normal(n_c))
    diff, logd = np.concatenate(diff), np.concatenate(logd)
    item_bench = np.asarray(item_bench)
    cell_m, cell_j = np.nonzero(observed[:, item_bench])
    eta = np.exp(logd[cell_j]) * (ability[cell_m, item_bench[cell_j]] - diff[cell_j])
    response = (rng.random(eta.size) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
    data = IRTData(
        model_ids=tuple(f"m{i:03d}" for i in range(n_models)),
        item_ids=tuple(f"b{k}:i{j}" for j, k in enumerate(item_bench)),
        benchmark_ids=tuple(f"b{k}" for k in range(n_bench)),
        category_ids=tuple(cat_ids),
        model_idx=cell_m.astype(np.int32),
        item_idx=cell_j.astype(np.int32),
        response=response,
        item_benchmark=item_bench.astype(np.int32),
        item_category=np.asarray(item_cat, np.int32),
        category_benchmark=np.asarray(cat_bench, np.int32),
        source=name,
    )
    truth = {"mu_difficulty": mu_b, "sigma_difficulty": sigma_b,
             "mu_log_discrimination": mu_a, "sigma_log_discrimination": sigma_a, "rho": rho,
             "sigma_category": sigma_c}
    return data, truth


def sim_unseen_shape():
    """The unseen set's shape, items scaled down ~60x: 8 benchmarks, 143 models, 7-110 models
    per benchmark, most models on 1-2 benchmarks, four benchmarks with 2-5 categories of
    very unequal size."""
    return simulate_prior(
        np.random.default_rng(21), n_models=143, name="sim: unseen shape",
        models_per_benchmark=(110, 60, 40, 25, 15, 10, 8, 7),
        category_sizes=((60,), (40, 8), (50,), (30, 12, 5, 3, 2), (45,), (20, 20, 4),
                        (60,), (25, 6)),
    )[0]


def sim_few_models():
    """5 benchmarks of 7-12 models each, 2-5 categories, most models on one benchmark."""
    return simulate_prior(
        np.random.default_rng(22), n_models=40, name="sim: few models per benchmark",
        models_per_benchmark=(12, 10, 9, 8, 7),
        category_sizes=((40, 10), (25, 25, 5), (80,), (30, 10, 6, 3, 2), (60, 4)),
    )[0]


def sim_many_models():
    """6 benchmarks, 150 models, 20-150 per benchmark (one benchmark every model took)."""
    return simulate_prior(
        np.random.default_rng(23), n_models=150, name="sim: many models",
        models_per_benchmark=(150, 70, 40, 30, 25, 20),
        category_sizes=((30, 5), (40,), (20, 15, 3), (35,), (12, 12, 12, 4), (30,)),
    )[0]


MEMBERS: dict[str, Callable[[], object]] = {
    "real-small-drop": real_small_drop,
    "real-small-merge-split": real_small_merge_split,
    "real-full-models25": real_full_models,
    "real-full-thin0.1": real_full_thin,
    "real-full-cat10-500": real_full_cat_10_500,
    "sim-unseen-shape": sim_unseen_shape,
    "sim-few-models": sim_few_models,
    "sim-many-models": sim_many_models,
}


def describe(data) -> dict:
    """Shape summary of a member: models per benchmark, categories and their sizes."""
    nt = data.n_train_items
    ib = data.item_benchmark[:nt]
    ob = ib[data.item_idx]
    per = []
    for k, b in enumerate(data.benchmark_ids):
        cats = data.item_category[:nt][ib == k]
        sizes = sorted(np.bincount(cats)[np.unique(cats)].tolist(), reverse=True)
        per.append({"benchmark": b, "models": int(np.unique(data.model_idx[ob == k]).size),
                    "items": int((ib == k).sum()), "categories": sizes})
    bench_per_model = np.bincount(
        np.unique(data.model_idx.astype(np.int64) * data.n_benchmarks + ob) // data.n_benchmarks,
        minlength=data.n_train_models)
    return {"n_obs": int(data.n_obs), "n_models": int(data.n_train_models), "n_items": int(nt),
            "density": round(float(data.n_obs / (data.n_train_models * nt)), 3),
            "models_on_1_2": round(float(np.mean(bench_per_model <= 2)), 2),
            "benchmarks": per}


# ----------------------------------------------------------------------------- variants
# name -> {"module.CONSTANT": value}; each patches the constant for this process only.
NC = "bayesirt.models.population.BENCHMARK_NONCENTRED"
def _centre_informative_in_unsolved(build, extreme_slopes=False):
    """A probe (sim-unseen-shape's replayed divergences): wrap ``build_inputs`` so that, in a
    benchmark where most items have no minority response (never or always solved), the
    items with >= ``CENTRE_MIN_RESPONSES`` minority responses get centred difficulties: they
    alone pin that benchmark's mean, which otherwise moves with their non-centred values."""
    def wrapped(data, **kwargs):
        from bayesirt.models import inputs as model_inputs

        built = build(data, **kwargs)
        arrays = built.arrays
        n_items = arrays["item_benchmark"].shape[0]
        train = np.asarray(data.item_idx) < n_items
        answered = np.bincount(np.asarray(data.item_idx)[train], minlength=n_items)
        correct = np.bincount(np.asarray(data.item_idx)[train],
                              weights=np.asarray(data.response)[train], minlength=n_items)
        minority = np.minimum(correct, answered - correct)
        bench = np.asarray(arrays["item_benchmark"])
        n_bench = int(bench.max()) + 1
        extreme = np.bincount(bench, weights=(minority == 0), minlength=n_bench)
        mostly = extreme > 0.5 * np.bincount(bench, minlength=n_bench)
        centre = mostly[bench] & (minority >= model_inputs.CENTRE_MIN_RESPONSES)
        split = arrays.get("difficulty_split")
        if split is not None:  # split benchmarks keep their form
            centre &= ~(np.asarray(split)[bench] > 0)
        arrays["difficulty_centred"] = np.maximum(arrays["difficulty_centred"],
                                                  centre.astype(np.float32))
        if extreme_slopes:  # and the slopes of never / always solved items centred
            arrays["log_discrimination_centred"] = np.maximum(
                arrays["log_discrimination_centred"], (minority == 0).astype(np.float32))
        print(f"probe: centred {int(centre.sum())} informative items in benchmarks "
              f"{np.flatnonzero(mostly).tolist()}", flush=True)
        return built
    return wrapped


VARIANTS: dict[str, dict] = {
    # the code as it stands
    "default": {},
    # the rule before this suite: category means centred wherever they have >= 20 items
    "before": {"bayesirt.models.inputs.CATEGORY_PIN_RATIO": float("inf")},
    # every category mean non-centred
    "cat-nc": {"bayesirt.models.inputs.CENTRE_MIN_CATEGORY_ITEMS": 10**9},
    # smaller steps (FitConfig fields are given as "config.FIELD")
    "ta0.9": {"config.target_accept": 0.9},
    # difficulties centred (>= 5 minority responses) in benchmarks of any size
    "dc": {"bayesirt.models.inputs.CENTRE_MIN_BENCHMARK_ITEMS_DIFFICULTY": 0},
    # twice the draws
    "draws2000": {"config.draws": 2000},
    # The default before 2026-12-07's item-mean split and pop-min4 (both adopted; the
    # variants below up to "split-both+pop-min4" were measured against this code and are
    # the default, or the default plus one lever, since).
    "pre-split": {"bayesirt.models.inputs.ITEM_SPLIT_PIN_RATIO": None,
                  **{f"bayesirt.models.{m}.POPULATION_MIN_BENCHMARKS": 3
                     for m in ("population", "irt", "simulate")}},
    # a population of benchmarks estimated only from >= 4 benchmarks (fixed weakly
    # informative priors below): its spreads rest on K benchmark values, and with 3 the
    # centred benchmark level sat in their funnel (real-small-drop); measured without the
    # split (ITEM_SPLIT_PIN_RATIO None then)
    "pop-min4": {"bayesirt.models.inputs.ITEM_SPLIT_PIN_RATIO": None,
                 **{f"bayesirt.models.{m}.POPULATION_MIN_BENCHMARKS": 4
                    for m in ("population", "irt", "simulate")}},
    # a benchmark's non-centred item difficulties with their mean sampled centred
    # (population.mixed_normal_split) where their data pin them (inputs.item_mean_pin
    # <= 1: the data pin them at least as tightly as their prior), with the population from
    # >= 4 benchmarks; "split-both": the slopes' mean and spread too. ("mean-split+pop-min4",
    # a first version, is in the records only: split wherever >= 20 such items.)
    "split+pop-min4": {"bayesirt.models.inputs.ITEM_SPLIT_PIN_RATIO": 1.0,
                       **{f"bayesirt.models.{m}.POPULATION_MIN_BENCHMARKS": 4
                          for m in ("population", "irt", "simulate")}},
    "split-both+pop-min4": {"bayesirt.models.inputs.ITEM_SPLIT_PIN_RATIO": 1.0,
                            "bayesirt.models.inputs.DISCRIMINATION_SPLIT": True,
                            **{f"bayesirt.models.{m}.POPULATION_MIN_BENCHMARKS": 4
                               for m in ("population", "irt", "simulate")}},
    # the loadings' tilt squared on top of the adopted split and pop-min4 (the default now):
    # tilt2's suite cost was real-small-drop's 3-benchmark population funnel, gone with
    # pop-min4
    "split+pop-min4+tilt2": {"bayesirt.models.population.UNIQUENESS_POWER": 2.0},
    # the standard sampler-side answer to divergences and low ESS together: smaller steps
    # (Stan's advice for divergences) and twice the draws, the model untouched; its records
    # were measured on the pre-split default, so it carries that default's constants
    "ta0.95+draws2000": {"config.target_accept": 0.95, "config.draws": 2000,
                         "bayesirt.models.inputs.ITEM_SPLIT_PIN_RATIO": None,
                         **{f"bayesirt.models.{m}.POPULATION_MIN_BENCHMARKS": 3
                            for m in ("population", "irt", "simulate")}},
    # the same on top of the adopted split and pop-min4 (the default since 2026-12-07)
    "split+pop-min4+ta0.95+draws2000": {"config.target_accept": 0.95, "config.draws": 2000},
    # smaller steps on the adopted default (robustness_slopes.md)
    "ta0.99": {"config.target_accept": 0.99},
    # smaller steps with the loadings' tilt squared: ta0.99 removed the scattered
    # divergences but its small steps let chains settle in the loadings' Heywood corner,
    # which the squared tilt pushes the posterior away from
    "tilt2+ta0.99": {"config.target_accept": 0.99,
                     "bayesirt.models.population.UNIQUENESS_POWER": 2.0},
    "tilt2+ta0.95": {"config.target_accept": 0.95,
                     "bayesirt.models.population.UNIQUENESS_POWER": 2.0},
    "tilt2+ta0.99+draws2000": {"config.target_accept": 0.99, "config.draws": 2000,
                               "bayesirt.models.population.UNIQUENESS_POWER": 2.0},
    # (tilt2+ta0.99+draws2000 is the default since 2026-12-07, robustness_steps.md; since
    # then ta0.99, tilt2 and tilt2+ta0.99 also run the default's program, as the draws
    # default to 2,000: their records were made at 1,000.) The default before that:
    # NUTS's usual 0.8 x 1,000 and the tilt to the first power
    "pre-steps": {"config.target_accept": 0.8, "config.draws": 1000,
                  "bayesirt.models.population.UNIQUENESS_POWER": 1.0},
    # the slopes' common spread level as the sampler's coordinate (population.spread_level)
    "sa-level": {"bayesirt.models.population.SLOPE_SPREAD_LEVEL": True},
    # no item slope centred (inputs.CENTRE_MIN_BENCHMARK_ITEMS_SLOPE; the default since
    # 2026-12-07, measured as this variant), alone and with sa-level; slope-c500: the rule
    # before (slopes centred as difficulties are)
    "slope-nc": {"bayesirt.models.inputs.CENTRE_MIN_BENCHMARK_ITEMS_SLOPE": None},
    "sa-level+slope-nc": {"bayesirt.models.population.SLOPE_SPREAD_LEVEL": True,
                          "bayesirt.models.inputs.CENTRE_MIN_BENCHMARK_ITEMS_SLOPE": None},
    "slope-c500": {"bayesirt.models.inputs.CENTRE_MIN_BENCHMARK_ITEMS_SLOPE": 500},
    # the difficulties' spread split off too where their mean is (population.mixed_normal_split
    # with split_scale): the pinned spread as a coordinate, against the funnel at small
    # sigma_difficulty of sim-many's 20-model benchmark
    "b-split-scale": {"bayesirt.models.population.DIFFICULTY_SPLIT_SCALE": True},
    # the default before a benchmark's mean was anchored on its one centred category
    # (inputs.CATEGORY_ANCHOR)
    "no-anchor": {"bayesirt.models.inputs.CATEGORY_ANCHOR": False},
    # a split one-category benchmark's mean written from its items' mean and an offset
    # (inputs.ITEM_SPLIT_ANCHOR), against the funnel the replay found at sim-many's b5
    "split-anchor": {"bayesirt.models.inputs.ITEM_SPLIT_ANCHOR": True},
    # a probe of sim-unseen's replayed divergences (a benchmark whose items are mostly never
    # solved: its mean moved with the non-centred z of the few informative items): item
    # difficulties with >= 5 minority responses centred in benchmarks of >= 20 items
    # the same probe narrowed to the benchmarks whose items are mostly never (or always)
    # solved: only there are the informative items centred (_centre_informative_in_unsolved)
    "centre-informative": {"bayesirt.inference.nuts.build_inputs": "centre-informative"},
    # and the slopes of the items nobody (or everybody) solved centred: their likelihood
    # rises with the slope, so a non-centred slope moves with the benchmark's slope spread
    "centre-informative+extreme-slopes": {
        "bayesirt.inference.nuts.build_inputs": "centre-informative+extreme-slopes"},
    # the population of slope spreads narrower (scale Gamma(2) of mean 0.2, not 0.4): a
    # thin benchmark's slope spread pooled towards the others', so that a never-solved
    # item's slope cannot reach the thousands with it (sim-unseen's second kind); the two
    # shared sets' slope spreads are 0.34-0.55 (posterior medians), a log-sd of ~0.17
    "slope-pop0.2": {"bayesirt.models.population.POPULATION_PRIORS": {
        "log_sigma_log_discrimination_scale": ("gamma2", 0.0, 0.2)}},
    "split-anchor+slope-pop0.2": {
        "bayesirt.models.inputs.ITEM_SPLIT_ANCHOR": True,
        "bayesirt.models.population.POPULATION_PRIORS": {
            "log_sigma_log_discrimination_scale": ("gamma2", 0.0, 0.2)}},
    # (split-anchor+slope-pop0.2 is the default since 2026-12-07 evening,
    # robustness_slopepop.md; since then "split-anchor" and "slope-pop0.2" run its program
    # too.) The default before that: no item-mean anchor, the slope spreads' population
    # scale of mean 0.4
    "pre-slopepop": {"bayesirt.models.inputs.ITEM_SPLIT_ANCHOR": False,
                     "bayesirt.models.population.POPULATION_PRIORS": {
                         "log_sigma_log_discrimination_scale": ("gamma2", 0.0, 0.4)}},
    "split-anchor+dc20": {"bayesirt.models.inputs.ITEM_SPLIT_ANCHOR": True,
                          "bayesirt.models.inputs.CENTRE_MIN_BENCHMARK_ITEMS_DIFFICULTY": 20},
    # double precision (jax_enable_x64): are the scattered divergences numerical (float32
    # overflow or cancellation) rather than geometric?
    "x64": {"jax.enable_x64": True},
    # the dense mass-matrix block over the benchmark-level and population coordinates
    "block": {"config.mass_matrix": "block"},
    # one Bernoulli term per response, the likelihood's form before the dense response
    # blocks (bayesirt.models.blocks): the same posterior, slower gradients
    "pointwise": {"config.dense_blocks": False},
    # the dense response blocks on (off by default: memory growth, bench/results/blocks.md)
    "blocks": {"config.dense_blocks": True},
    # the loadings' population without its tilt by the uniqueness (the model before it)
    "no-tilt": {"bayesirt.models.population.UNIQUENESS_POWER": 0.0},
    # the tilt squared: density proportional to (1 - rho^2)^2 N(logit rho), further from the
    # Heywood corner where a half-item fit of the small set stuck a chain
    "tilt2": {"bayesirt.models.population.UNIQUENESS_POWER": 2.0},
    # the loadings non-centred against their population
    "rho-nc": {NC: frozenset({"rho"})},
    # the population's spreads half-normal (before they were made boundary-avoiding)
    "pop-halfnormal": {"bayesirt.models.population.POPULATION_PRIORS": "halfnormal"},
    # the loadings centred everywhere (before the per-benchmark rule)
    "rho-centred": {"bayesirt.models.inputs.LOADING_CENTRE_MIN_LINKED": 0},
    # the loadings' rule before 2026-12-07: centred where >= 20 models link the benchmark
    "loading-centre20": {"bayesirt.models.inputs.LOADING_CENTRE_MIN_LINKED": 20},
    # a benchmark's spread between its category means: Gamma(2) of mean 0.8 wherever there
    # are categories ("cat-gamma"), N+(1) everywhere ("cat-halfnormal", the prior before);
    # the default is Gamma(2) only with <= 5 categories
    "cat-gamma": {"bayesirt.models.inputs.CATEGORY_FEW_MAX": 10**9},
    "cat-halfnormal": {"bayesirt.models.inputs.CATEGORY_FEW_MAX": 0},
    # every benchmark-level parameter non-centred against its population
    "bench-nc": {NC: frozenset({"mu_difficulty", "sigma_difficulty",
                                "mu_log_discrimination", "rho"})},
    # the discrimination means and the loadings non-centred
    "mua-rho-nc": {NC: frozenset({"mu_log_discrimination", "rho"})},
}


def _halfnormal_population(priors: dict) -> dict:
    """POPULATION_PRIORS with the spreads half-normal, as before Gamma(2)."""
    from bayesirt.models.population import HALFNORMAL_SPREADS

    return {k: (("halfnormal", 0.0, HALFNORMAL_SPREADS[k]) if k in HALFNORMAL_SPREADS
                else spec) for k, spec in priors.items()}


def apply_variant(name: str) -> None:
    """Patch module constants for this process (see ``VARIANTS``)."""
    import importlib

    for key, value in VARIANTS[name].items():
        if key.startswith("config."):
            continue
        if key == "jax.enable_x64":
            import jax

            jax.config.update("jax_enable_x64", value)
            continue
        module, attr = key.rsplit(".", 1)
        mod = importlib.import_module(module)
        if attr == "POPULATION_PRIORS" and value == "halfnormal":
            # patched in place: the simulator and the model share the one dict
            mod.POPULATION_PRIORS.update(_halfnormal_population(mod.POPULATION_PRIORS))
            continue
        if attr == "POPULATION_PRIORS" and isinstance(value, dict):
            mod.POPULATION_PRIORS.update(value)  # in place, as above: some entries only
            continue
        if value in ("centre-informative", "centre-informative+extreme-slopes"):
            value = _centre_informative_in_unsolved(getattr(mod, attr),
                                                    extreme_slopes=value.endswith("slopes"))
        setattr(mod, attr, value)


# ----------------------------------------------------------------------------- running
def run_one(member: str, seed: int, variant: str, records: Path, keep: Path | None) -> dict:
    import jax

    from bayesirt.inference import FitConfig, convergence_headline, fit

    apply_variant(variant)
    data = MEMBERS[member]()
    started = time.perf_counter()
    overrides = {k.split(".", 1)[1]: v for k, v in VARIANTS[variant].items()
                 if k.startswith("config.")}
    res = fit(jax.random.key(seed), data, FitConfig(seed=seed, progress=False, **overrides))
    wall = time.perf_counter() - started
    head = convergence_headline(res.posterior, res.sample_stats, res.max_tree_depth,
                                res.dims, res.coords, constants=res.constant_data,
                                # so the advice names the rung above the fit's own target
                                target_accept=(res.config or {}).get("target_accept"))
    stats = res.sample_stats
    rec = {
        "member": member, "seed": seed, "variant": variant,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "shape": describe(data),
        **{k: head[k] for k in ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences",
                                "tree_depth_hits", "n_parameters")},
        **{k: head.get(k, "") for k in ("rhat_max_name", "ess_bulk_min_name",
                                        "ess_tail_min_name")},
        "div_per_chain": np.asarray(stats["diverging"]).sum(axis=1).tolist(),
        "steps_per_draw": round(float(np.mean(stats["n_steps"])), 1),
        "step_size": [round(float(s), 4) for s in np.asarray(stats["step_size"])[:, -1]],
        "wall_s": round(wall, 1),
        "blocks": head.get("blocks", []),
        "divergence_location": head.get("divergence_location", []),
    }
    rec["converged"] = bool(rec["rhat_max"] <= 1.01 and rec["ess_bulk_min"] >= 400
                            and rec["ess_tail_min"] >= 400 and rec["divergences"] == 0)
    records.parent.mkdir(parents=True, exist_ok=True)
    with records.open("a") as fh:
        fh.write(json.dumps(rec) + "\n")
    if keep is not None:  # raw draws for later inspection (under /tmp, never the repo)
        keep.mkdir(parents=True, exist_ok=True)
        np.savez(keep / f"{member}_{variant}_s{seed}.npz",
                 **{f"post__{k}": v for k, v in res.posterior.items()},
                 **{f"stat__{k}": v for k, v in stats.items()})
    return rec


def _fmt(rec: dict) -> str:
    ok = "converged" if rec["converged"] else "**NOT**"
    return (f"| {rec['member']} | {rec['variant']} | {rec['seed']} | "
            f"{rec['rhat_max']:.4f} ({rec['rhat_max_name']}) | "
            f"{rec['ess_bulk_min']:.0f} ({rec['ess_bulk_min_name']}) | "
            f"{rec['ess_tail_min']:.0f} ({rec['ess_tail_min_name']}) | {rec['divergences']} | "
            f"{rec['steps_per_draw']} | {rec['wall_s']:.0f} | {ok} |")


def render(records: Path, out: Path, notes: Path | None) -> None:
    """Write the markdown table of every record (grouped by variant), plus the shapes."""
    recs = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    lines = [
        "# Robustness suite: default hier2pl fit on shapes it was not tuned on",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), python "
        f"{platform.python_version()}; shared with other jobs while measured (wall times "
        "are upper bounds). Script: `bench/robustness.py`; every fit is 4 chains x 1500 "
        "warm-up + the default draws (1000 before 2026-12-07, 2000 since), `--parameterisation "
        "auto`, the seed shown. Pass: R-hat <= 1.01 "
        "on every parameter, bulk- and tail-ESS >= 400, zero divergences.",
        "",
    ]
    if notes is not None and notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    lines += ["## Members", "", "| member | obs | models | items | density | models on 1-2 "
              "benchmarks | per benchmark: models / items / category sizes |",
              "|---|---|---|---|---|---|---|"]
    seen = set()
    for r in recs:
        if r["member"] in seen:
            continue
        seen.add(r["member"])
        s = r["shape"]
        per = "; ".join(f"{b['benchmark']} {b['models']}/{b['items']}/"
                        f"{'+'.join(map(str, b['categories']))}" for b in s["benchmarks"])
        lines.append(f"| {r['member']} | {s['n_obs']} | {s['n_models']} | {s['n_items']} | "
                     f"{s['density']} | {s['models_on_1_2']} | {per} |")
    lines += ["", "## Every fit (in the order run)", "",
              "| member | variant | seed | R-hat max | bulk-ESS min | tail-ESS min | div | "
              "steps/draw | wall s | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_fmt(r) for r in recs]
    lines += ["", "## Where the failures sit (block diagnosis of each failing fit)", ""]
    for r in recs:
        if r["converged"]:
            continue
        lines.append(f"- **{r['member']} / {r['variant']} / seed {r['seed']}** "
                     f"(divergences per chain {r['div_per_chain']}):")
        for b in r["blocks"][:4]:
            lines.append(f"  - {b['text']}")
        for d in r["divergence_location"][:3]:
            lines.append(f"  - divergent draws: {d['text']}")
    out.write_text("\n".join(lines) + "\n")
    print(f"written {out}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", default=",".join(MEMBERS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--variant", default="default", choices=sorted(VARIANTS))
    ap.add_argument("--records", type=Path, default=RECORDS)
    ap.add_argument("--keep-draws", type=Path, default=Path("/tmp/bayesirt-robustness/draws"))
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--notes", type=Path, default=None,
                    help="markdown inserted above the tables when rendering")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for name, build in MEMBERS.items():
            print(name, json.dumps(describe(build())))
        return 0
    if args.render:
        render(args.records, OUT, args.notes)
        return 0
    for member in args.members.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            rec = run_one(member, seed, args.variant, args.records, args.keep_draws)
            print(_fmt(rec), flush=True)
            for b in rec["blocks"][:3]:
                print("   ", b["text"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
