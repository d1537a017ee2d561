"""Turn validated data (``bayesirt.data.IRTData``) into the arrays and static sizes a model takes.

The model functions see only what is built here: index arrays into the *training* items, the
observed (model, benchmark) "cells" whose abilities are sampled, category bookkeeping and an
optional PCA projection of the item embeddings. Everything is numpy; the inference module
moves it to the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayesirt.errors import InputError
from bayesirt.features import FEATURES, model_features, org_index
from bayesirt.models.pins import category_anchors, category_pin, item_mean_pin


@dataclass(frozen=True)
class ModelInputs:
    """Arrays and static sizes for one model fit.

    Attributes
    ----------
    arrays : dict of str to ndarray
        Traced model arguments: ``obs_item`` (n_obs,), ``obs_cell`` (n_obs,), ``cell_model``
        (n_cells,), ``cell_benchmark`` (n_cells,), ``cell_mask`` (n_models, n_benchmarks) float,
        ``item_benchmark`` (n_items,), ``item_category`` (n_items,), ``free_category``
        (n_free_categories,), ``free_category_slot`` (n_free_categories,), ``multi_benchmark``
        (n_multi,), ``model_idx`` (n_obs,), ``item_embedding_pc`` (n_items, n_components),
        ``benchmark_nuisance_width`` (n_benchmarks,), ``model_nuisance_width`` (1,),
        and the parameterisation masks ``difficulty_centred``, ``log_discrimination_centred``
        (n_items,) and ``category_centred`` (n_free_categories,), float 0/1; where some
        benchmark's item mean is split off (``ITEM_SPLIT_PIN_RATIO``), also
        ``difficulty_split`` (n_benchmarks,) (and ``log_discrimination_split`` with
        ``DISCRIMINATION_SPLIT``).
        Here ``n_items`` counts training items only.
    sizes : dict of str to int
        Static sizes bound into the model with ``functools.partial``.
    response : ndarray
        Observed 0/1 responses, int32 (n_obs,).
    coords : dict of str to list of str
        Labels for the plate dims (``model``, ``item``, ``benchmark``, ``category``,
        ``component``, ``embedding_dim``).
    constants : dict of str to ndarray
        Arrays kept beside the draws (embedding projection, index arrays).
    constant_dims : dict of str to tuple of str
        Dims of ``constants``.
    """

    arrays: dict[str, np.ndarray]
    sizes: dict[str, int]
    response: np.ndarray
    coords: dict[str, list[str]]
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    constant_dims: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _pca(embeddings: np.ndarray, n_components: int) -> dict[str, np.ndarray]:
    """Principal components of the training item embeddings.

    Parameters
    ----------
    embeddings : ndarray, shape (n_items, d)
        Training item embeddings.
    n_components : int
        Number of components kept.

    Returns
    -------
    dict
        ``mean`` (d,), ``components`` (n_components, d), ``scale`` (n_components,) and the
        standardised scores ``scores`` (n_items, n_components), each float32.
    """
    x = embeddings.astype(np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    # Economy SVD: 14k x 384 takes well under a second, no need for a randomised method.
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:n_components]
    scores = centred @ components.T
    scale = scores.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return {
        "mean": mean.astype(np.float32),
        "components": components.astype(np.float32),
        "scale": scale.astype(np.float32),
        "scores": (scores / scale).astype(np.float32),
    }


# Parameterisation thresholds (see ``build_inputs``). Centred where the data pin a value down,
# non-centred where they do not. An item's information about its difficulty grows with its
# minority responses (an item all 71 models got right only says "easier than the weakest
# model", so its difficulty follows the category mean: non-centred); a category's mean is
# pinned by its items.
CENTRE_MIN_RESPONSES = 5
# A centred item parameter leans on its benchmark's spread being pinned by many items. On the
# small set (76-171 items per benchmark) centring items with enough responses made things
# worse in every variant measured (3 seeds each): difficulties and slopes centred, R-hat 1.03
# and divergences on sigma_log_discrimination; difficulties only, R-hat 1.016 on
# mu_difficulty (both with the narrow ability nuisances then in use), and with width-1
# nuisances one chain of seed 2 stuck at tree depth 10. Items are centred only in
# benchmarks with this many items.
CENTRE_MIN_BENCHMARK_ITEMS = 500
# The same threshold for difficulties alone.
CENTRE_MIN_BENCHMARK_ITEMS_DIFFICULTY = CENTRE_MIN_BENCHMARK_ITEMS
# Item slopes are never centred under ``auto`` (None; an int restores the rule above for
# them). One item's responses barely pin its slope: its posterior sd is 0.6-0.8 of its
# benchmark's slope spread on the dev set (29-71 responses per item; read from a short,
# unconverged fit of 2 x 100 draws) and 0.7-1.7 on the robustness suite. Centring the
# pinned-looking ones (>= 5 minority responses in a >= 500-item benchmark) made their
# spread the suite's slowest quantity: with every slope non-centred, real-full-thin0.1 (34
# of MMLU-Pro's slopes had been centred) passes every check at seeds 0 and 1 (R-hat 1.0161
# -> 1.0093 at seed 0; seed 2 lost a chain to the loadings' Heywood corner), and
# real-full-cat10-500 (346) has R-hat <= 1.0076 and bulk-ESS >= 764 at seeds 0-2 (its
# divergences about as before); bench/results/robustness_slopes.md.
CENTRE_MIN_BENCHMARK_ITEMS_SLOPE: int | None = None
CENTRE_MIN_CATEGORY_ITEMS = 20
# A centred category mean nu_c ~ N(mu_k, sigma_c) is a funnel wherever sigma_c can be smaller
# than the precision with which the category's items pin nu_c: a benchmark whose categories
# barely differ (a meaningless split), whose items spread widely, or whose items have few
# responses (few models). So, in benchmarks whose items are non-centred (fewer than
# CENTRE_MIN_BENCHMARK_ITEMS), a category mean is centred only where a crude, fit-free
# estimate says its items pin it to within this fraction of the between-category spread
# (``category_pin``). Measured (bench/results/robustness.md): the ">= 20 items" rule alone
# left 535-635 divergences at the low end of sigma_category on a random 2-way split of
# cruxeval_o and on simulated benchmarks with 2-5 categories; centring only in benchmarks
# with >= 5 categories still left 94 (a 5-category benchmark with no category spread); this
# rule, 21, none at the category level. Where items are centred (large benchmarks) their
# category means stay centred: non-centring a 500-item category under centred items gave
# R-hat 1.11 (the offset had to move with every change of mu and sigma_c), and shrinking
# the spread estimate towards the prior scale instead re-centred a 60-item category with
# no spread (106 divergences at small sigma_category). On both shared sets every category
# mean keeps its form (real-multibench: benchmarks of >= 500 items; small set: < 20 items).
CATEGORY_PIN_RATIO = 0.25
PARAMETERISATIONS = ("auto", "centred", "noncentred")
# A benchmark's loading on the general ability is identified by the models that took it AND
# another benchmark (the covariance of their abilities): the sd of a correlation's Fisher z
# from n pairs is ~1 / sqrt(n - 3), ~2.4 / sqrt(n) on the logit of a loading near 0.7. The
# centred form needs that well below the loadings' population spread (posterior 0.4-0.7 on
# every set measured) AT EVERY VALUE THE SPREAD TAKES; with 3-8 benchmarks the spread's
# posterior reaches down to ~0.02, where every centred loading sits in its funnel. Measured
# (bench/results/robustness_slopepop.md): every loading non-centred took the two
# simulations (20-150 linking models per benchmark, all centred before at the old threshold
# of 20) from 9 divergences to 3 over seeds 0-2 (3 -> 0 on sim-many-models, whose 2 + 1 sat
# at the spread's low end), kept the other six members passing, and left the small set
# (24-26 linking models) unchanged to the third decimal in ESS and new-item log-loss.
# Centred only where so many models link that the data pin a loading to a seventh of the
# spread (~0.1 at n = 500); no data set measured reaches it. Before 2026-12-07: 20.
LOADING_CENTRE_MIN_LINKED = 500
# A benchmark's spread between its category means rests on that many means: with at most
# this many, its prior is the boundary-avoiding one (``population.CATEGORY_SPREAD_PRIOR_FEW``).
CATEGORY_FEW_MAX = 5
# A benchmark whose category means include exactly one centred (pinned) category: its mean
# mu_k is then pinned only through that category, nu_a ~ N(mu_k, sigma_c), so where sigma_c
# can be small the centred mu_k sits in a funnel of width sigma_c around nu_a. With
# CATEGORY_ANCHOR the sampler moves nu_a and the offset w = (nu_a - mu_k) / sigma_c ~ N(0, 1)
# instead (``population.anchored_categories``; same model), where the data do not rule out a small
# sigma_c: some category of the benchmark is not pinned within the spread between them
# (``category_pin`` above CATEGORY_PIN_RATIO). Found by replaying the divergent transitions
# of real-full-cat10-500 (MMLU-Pro as 500 centred + 10 non-centred items of no real
# difference): both trajectories blew up at that category's coordinate and its
# sigma_category (bench/divergence_replay.py, bench/results/robustness_anchor.md).
CATEGORY_ANCHOR = True
# A benchmark's non-centred item difficulties get their mean as a coordinate of its own
# (``population.mixed_normal_split``) where it has at least ITEM_SPLIT_MIN_ITEMS of them and
# their data pin them at least as tightly as their prior does: crude noise sd over the
# items' spread (``pins.item_mean_pin``) at most ITEM_SPLIT_PIN_RATIO (None: never). Where the
# data do not pin the items, the centred mean sits in a funnel at small sigma_difficulty:
# measured (robustness suite, seed 0) with the split wherever >= 20 such items, a 7-model
# benchmark (ratio inf) took sim-few-models from 19 to 267 divergences; with this rule, 11.
# The suite's seed-0 divergences in all: 487 -> 177 (bench/results/robustness_split.md).
# DISCRIMINATION_SPLIT: the slopes' mean and spread too, in the same benchmarks (measured,
# not adopted: the slopes are not pinned where the difficulties are, and their spread's
# R-hat got no better).
ITEM_SPLIT_MIN_ITEMS = 20
# In a split benchmark of one category whose items are all non-centred, the benchmark's
# mean mu_k is pinned only through the items' mean e_k ~ N(mu_k, s_k / sqrt(n_k)), a funnel
# of width s_k / sqrt(n_k) at a small sigma_difficulty (the replayed divergences of
# sim-many-models: all at its 20-model benchmark's mu_difficulty and item mean). With
# ITEM_SPLIT_ANCHOR the sampler moves e_k and w = (e_k - mu_k) / (s_k / sqrt(n_k)) instead,
# as for the category anchor (``population.anchored_categories``; same model). Measured
# (bench/results/robustness_anchor.md, robustness_slopepop.md): alone it took
# sim-many-models from 7 / 10 / 6 divergences at seeds 0 / 1 / 2 to 0 / 0 / 3 but
# sim-unseen-shape from 5 / 3 / 6 to 12 / 23 / 11 (at a 10-model benchmark's slope spread);
# together with the narrower population of slope spreads (``population.POPULATION_PRIORS``)
# sim-unseen-shape has 1 / 4 / 1, and the small set and the real members are as before.
ITEM_SPLIT_ANCHOR = True
ITEM_SPLIT_PIN_RATIO: float | None = 1.0
DISCRIMINATION_SPLIT = False
# Cells (model, benchmark) with at least this many items answered get narrow standardisation
# nuisances (see ``build_inputs``).
NARROW_NUISANCE_MIN_ITEMS = 500


def parameterisation_masks(
    item_minority_count: np.ndarray,
    item_benchmark_size: np.ndarray,
    category_item_count: np.ndarray,
    parameterisation: str = "auto",
    category_pin: np.ndarray | None = None,
    category_benchmark_size: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Which item and category parameters the sampler moves centred (1) or non-centred (0).

    Parameters
    ----------
    item_minority_count : ndarray of int, shape (n_items,)
        Training responses per item in the item's minority class: min(correct, wrong).
    item_benchmark_size : ndarray of int, shape (n_items,)
        Number of training items in each item's benchmark.
    category_item_count : ndarray of int, shape (n_free_categories,)
        Training items per free category.
    parameterisation : {"auto", "centred", "noncentred"}
        ``auto`` centres an item's difficulty when at least ``CENTRE_MIN_RESPONSES`` of its
        responses are in its minority class and its benchmark has at least
        ``CENTRE_MIN_BENCHMARK_ITEMS_DIFFICULTY`` items (its log-discrimination likewise
        with ``CENTRE_MIN_BENCHMARK_ITEMS_SLOPE``, by default never), and a category mean
        when the category has at least ``CENTRE_MIN_CATEGORY_ITEMS`` items and (where
        ``category_pin`` is given) either its benchmark has at least
        ``CENTRE_MIN_BENCHMARK_ITEMS`` items or its items pin it to within
        ``CATEGORY_PIN_RATIO`` of the between-category spread; the other two force one form
        everywhere.
    category_pin : ndarray of float, shape (n_free_categories,), optional
        ``se_c / tau_k`` from :func:`category_pin`; None skips that condition.
    category_benchmark_size : ndarray of int, shape (n_free_categories,), optional
        Training items in each free category's benchmark (needed with ``category_pin``).

    Returns
    -------
    dict
        ``difficulty_centred``, ``log_discrimination_centred`` (n_items,) and
        ``category_centred`` (n_free_categories,), float32 0/1.

    Raises
    ------
    ValueError
        On an unknown parameterisation.
    """
    if parameterisation not in PARAMETERISATIONS:
        raise InputError(
            f"parameterisation must be one of {', '.join(PARAMETERISATIONS)}, "
            f"got {parameterisation!r}"
        )
    items = np.asarray(item_minority_count)
    cats = np.asarray(category_item_count)
    if parameterisation == "auto":
        item_centred = (
            np.zeros(items.shape, bool) if CENTRE_MIN_BENCHMARK_ITEMS_SLOPE is None
            else (items >= CENTRE_MIN_RESPONSES)
            & (np.asarray(item_benchmark_size) >= CENTRE_MIN_BENCHMARK_ITEMS_SLOPE))
        difficulty_centred = (items >= CENTRE_MIN_RESPONSES) & (
            np.asarray(item_benchmark_size) >= CENTRE_MIN_BENCHMARK_ITEMS_DIFFICULTY
        )
        cat_centred = cats >= CENTRE_MIN_CATEGORY_ITEMS
        if category_pin is not None:
            large = (np.zeros(cats.shape, bool) if category_benchmark_size is None else
                     np.asarray(category_benchmark_size) >= CENTRE_MIN_BENCHMARK_ITEMS)
            cat_centred &= large | (np.asarray(category_pin) <= CATEGORY_PIN_RATIO)
    else:
        flag = parameterisation == "centred"
        item_centred = np.full(items.shape, flag)
        difficulty_centred = item_centred
        cat_centred = np.full(cats.shape, flag)
    return {
        "difficulty_centred": difficulty_centred.astype(np.float32),
        "log_discrimination_centred": item_centred.astype(np.float32),
        "category_centred": cat_centred.astype(np.float32),
    }


def build_inputs(
    data: Any, *, embedding_components: int = 0, parameterisation: str = "auto",
    metadata: bool = False,
) -> ModelInputs:
    """Build model inputs from training data.

    Parameters
    ----------
    data : bayesirt.data.IRTData
        Validated data; only training responses and training items are used.
    embedding_components : int, default 0
        Number of PCA components of the item embeddings to regress difficulty on; 0 disables
        the embedding term.
    parameterisation : {"auto", "centred", "noncentred"}, default "auto"
        How the hierarchical model's item and category parameters are sampled (see
        :func:`parameterisation_masks`); it changes the sampler's geometry, not the model.
    metadata : bool, default False
        Add the models' metadata features (``model_features`` (n_models, n_features),
        ``model_org`` (n_models,), ``n_orgs`` meaning "unknown") for the ability prior
        (:mod:`bayesirt.features`); their centre and scale become constants.

    Returns
    -------
    ModelInputs

    Raises
    ------
    ValueError
        If embeddings are requested but the data has none, or there are no responses.
    """
    n_models = int(data.n_models)
    n_items = int(data.n_train_items)
    n_benchmarks = int(data.n_benchmarks)
    n_categories = int(data.n_categories)
    model_idx = np.asarray(data.model_idx, dtype=np.int32)
    item_idx = np.asarray(data.item_idx, dtype=np.int32)
    response = np.asarray(data.response, dtype=np.int32)
    if response.size == 0:
        raise InputError("no training responses: cannot fit a model to an empty data set")
    if embedding_components < 0:
        raise InputError(f"embedding_components must be >= 0, got {embedding_components}")
    item_benchmark = np.asarray(data.item_benchmark[:n_items], dtype=np.int32)
    item_category = np.asarray(data.item_category[:n_items], dtype=np.int32)
    category_benchmark = np.asarray(data.category_benchmark, dtype=np.int32)

    # Abilities are sampled only for (model, benchmark) cells that have data; the rest are
    # drawn afterwards from their conditional prior, which keeps prior-only directions out of
    # the sampler's geometry.
    obs_benchmark = item_benchmark[item_idx]
    cell_key = model_idx.astype(np.int64) * n_benchmarks + obs_benchmark
    cells, obs_cell = np.unique(cell_key, return_inverse=True)
    cell_model = (cells // n_benchmarks).astype(np.int32)
    cell_benchmark = (cells % n_benchmarks).astype(np.int32)
    cell_mask = np.zeros((n_models, n_benchmarks), dtype=np.float32)
    cell_mask[cell_model, cell_benchmark] = 1.0

    # A category level is only identifiable in benchmarks that have two or more categories
    # with training items; single-category benchmarks use the benchmark mean directly.
    used_categories = np.unique(item_category)
    per_benchmark = np.bincount(category_benchmark[used_categories], minlength=n_benchmarks)
    multi_benchmark = np.flatnonzero(per_benchmark >= 2).astype(np.int32)
    slot_of_benchmark = np.full(n_benchmarks, -1, dtype=np.int32)
    slot_of_benchmark[multi_benchmark] = np.arange(multi_benchmark.size, dtype=np.int32)
    free_category = used_categories[slot_of_benchmark[category_benchmark[used_categories]] >= 0]
    free_category = free_category.astype(np.int32)
    free_category_slot = slot_of_benchmark[category_benchmark[free_category]].astype(np.int32)

    # Nuisance widths of the ability standardisation (see ``irt.standardise_by_group``): where
    # cells are large, a rough posterior sd of one standardised ability, 1 / sqrt(1 + 0.1 n)
    # for n items answered, median over the group's members; 1 where cells are small.
    # Measured: with width 1, cells of 613-10,227 items (full real-multibench) made the
    # shift and stretch ~20x longer than any other direction (127 leapfrog steps per draw,
    # 63 with the narrow widths); with narrow widths, cells of 60-171 items (the small set,
    # the recovery test) left a chain stuck at a tiny step size in 2 of 7 runs, width 1 in
    # none.
    def nuisance_width(items_answered: np.ndarray) -> float:
        n = float(np.median(items_answered))
        return 1.0 / np.sqrt(1.0 + 0.1 * n) if n >= NARROW_NUISANCE_MIN_ITEMS else 1.0

    cell_items = np.bincount(obs_cell, minlength=cells.size)
    # Models per benchmark that also took another benchmark (what identifies its loading).
    linking = cell_mask * (cell_mask.sum(axis=1, keepdims=True) >= 2)
    loading_centred = {"auto": linking.sum(axis=0) >= LOADING_CENTRE_MIN_LINKED,
                       "centred": np.ones(n_benchmarks, bool),
                       "noncentred": np.zeros(n_benchmarks, bool)}.get(parameterisation)
    benchmark_width = np.ones(n_benchmarks)
    for k in np.unique(cell_benchmark):
        benchmark_width[k] = nuisance_width(cell_items[cell_benchmark == k])
    model_items = np.bincount(model_idx, minlength=n_models)
    model_width = nuisance_width(model_items[model_items > 0])
    n_answered = np.bincount(item_idx, minlength=n_items)
    n_correct = np.bincount(item_idx, weights=response, minlength=n_items).astype(np.int64)
    pin = category_pin(n_answered, n_correct, item_category, category_benchmark, free_category)
    masks = parameterisation_masks(
        np.minimum(n_correct, n_answered - n_correct),
        np.bincount(item_benchmark, minlength=n_benchmarks)[item_benchmark],
        np.bincount(item_category, minlength=n_categories)[free_category],
        parameterisation,
        pin,
        np.bincount(item_benchmark, minlength=n_benchmarks)[category_benchmark[free_category]],
    )
    anchor = category_anchors(masks["category_centred"], free_category_slot,
                              multi_benchmark, n_benchmarks, pin, CATEGORY_PIN_RATIO)
    if CATEGORY_ANCHOR and anchor is not None:
        masks.update(anchor)
    if ITEM_SPLIT_PIN_RATIO is not None and parameterisation == "auto":
        noncentred = masks["difficulty_centred"] == 0
        split = (np.bincount(item_benchmark[noncentred], minlength=n_benchmarks)
                 >= ITEM_SPLIT_MIN_ITEMS) & (item_mean_pin(
                     n_answered, n_correct, item_category, item_benchmark, noncentred,
                     n_benchmarks) <= ITEM_SPLIT_PIN_RATIO)
        if split.any():
            masks["difficulty_split"] = split.astype(np.float32)
            one_category = np.bincount(category_benchmark[used_categories],
                                       minlength=n_benchmarks) == 1
            no_centred = np.bincount(item_benchmark, weights=1.0 - noncentred,
                                     minlength=n_benchmarks) == 0
            split_anchor = split & one_category & no_centred
            if ITEM_SPLIT_ANCHOR and split_anchor.any():
                masks["difficulty_split_anchor"] = split_anchor.astype(np.float32)
                masks["benchmark_anchored"] = np.maximum(
                    masks.get("benchmark_anchored", np.zeros(n_benchmarks, np.float32)),
                    split_anchor.astype(np.float32))
            if DISCRIMINATION_SPLIT:
                masks["log_discrimination_split"] = split.astype(np.float32)
    arrays: dict[str, np.ndarray] = {
        **masks,
        "loading_centred": loading_centred.astype(np.float32),
        "model_idx": model_idx,
        "obs_item": item_idx,
        "obs_cell": obs_cell.astype(np.int32),
        "cell_model": cell_model,
        "cell_benchmark": cell_benchmark,
        "cell_mask": cell_mask,
        "benchmark_cell_count": np.bincount(cell_benchmark, minlength=n_benchmarks).astype(
            np.float32
        ),
        "benchmark_nuisance_width": benchmark_width.astype(np.float32),
        "model_nuisance_width": np.array([model_width], dtype=np.float32),
        "item_benchmark": item_benchmark,
        "item_category": item_category,
        "category_benchmark": category_benchmark,
        "free_category": free_category,
        "free_category_slot": free_category_slot,
        "multi_benchmark": multi_benchmark,
        # 1 where a multi-category benchmark has few categories (see CATEGORY_FEW_MAX)
        "multi_few_categories": (per_benchmark[multi_benchmark] <= CATEGORY_FEW_MAX).astype(
            np.float32),
    }
    coords: dict[str, list[str]] = {
        "model": list(data.model_ids),
        "item": list(data.item_ids[:n_items]),
        "benchmark": list(data.benchmark_ids),
        "category": list(data.category_ids),
        # Labels of the category level's own dims, so sigma_category and category_raw are
        # named by benchmark and category (in the headline, the file and the diagnosis).
        "multi_benchmark": [str(data.benchmark_ids[k]) for k in multi_benchmark],
        "free_category": [str(data.category_ids[c]) for c in free_category],
    }
    constants: dict[str, np.ndarray] = {
        "model_idx": model_idx,
        "item_idx": item_idx,
        "item_benchmark": item_benchmark,
        "item_category": item_category,
        "category_benchmark": category_benchmark,
    }
    constant_dims: dict[str, tuple[str, ...]] = {
        "model_idx": ("obs",),
        "item_idx": ("obs",),
        "item_benchmark": ("item",),
        "item_category": ("item",),
        "category_benchmark": ("category",),
    }
    if embedding_components:
        if data.item_embeddings is None:
            raise InputError(
                "embedding_components > 0 needs item embeddings (item_embeddings.npy in the "
                "train dir), but the data has none"
            )
        emb = np.asarray(data.item_embeddings[:n_items])
        if embedding_components > min(emb.shape):
            raise InputError(
                f"embedding_components={embedding_components} exceeds the embedding shape "
                f"{emb.shape}"
            )
        pca = _pca(emb, embedding_components)
        arrays["item_embedding_pc"] = pca["scores"]
        constants["embedding_pca_mean"] = pca["mean"]
        constants["embedding_pca_components"] = pca["components"]
        constants["embedding_pca_scale"] = pca["scale"]
        constant_dims["embedding_pca_mean"] = ("embedding_dim",)
        constant_dims["embedding_pca_components"] = ("component", "embedding_dim")
        constant_dims["embedding_pca_scale"] = ("component",)
        coords["component"] = [f"pc{i + 1}" for i in range(embedding_components)]
        coords["embedding_dim"] = [str(i) for i in range(emb.shape[1])]
    n_orgs = n_features = 0
    if metadata:
        feats, center, scale = model_features(data.model_param_count, data.model_is_instruct,
                                              data.model_release_year)
        org_ids = tuple(sorted({str(o).strip() for o in data.model_org} - {""}))
        org = org_index(list(data.model_org), org_ids)
        n_orgs, n_features = len(org_ids), feats.shape[1]
        # Index n_orgs = "no / unknown organisation" (its effect is the population mean 0).
        arrays["model_features"] = feats.astype(np.float32)
        arrays["model_org"] = np.where(org < 0, n_orgs, org).astype(np.int32)
        constants["metadata_center"] = center
        constants["metadata_scale"] = scale
        constant_dims["metadata_center"] = ("metadata_feature",)
        constant_dims["metadata_scale"] = ("metadata_feature",)
        coords["metadata_feature"] = list(FEATURES)
        coords["org"] = list(org_ids)
    sizes = {
        "n_orgs": n_orgs,
        "n_features": n_features,
        "n_models": n_models,
        "n_items": n_items,
        "n_benchmarks": n_benchmarks,
        "n_categories": n_categories,
        "n_cells": int(cells.size),
        "n_components": int(embedding_components),
        "n_obs": int(response.size),
        "n_free_categories": int(free_category.size),
        "n_multi": int(multi_benchmark.size),
    }
    return ModelInputs(
        arrays=arrays,
        sizes=sizes,
        response=response,
        coords=coords,
        constants=constants,
        constant_dims=constant_dims,
    )
