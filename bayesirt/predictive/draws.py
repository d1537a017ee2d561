"""The posterior draws the runtime predicts from: one validated container, draws leading.

Every array follows the flat-artifact contract (see :mod:`.flatfile`): draw variables have a
leading ``S`` (draws) axis and the trailing dims in :data:`DRAW_VARS`; constants (index maps
and the embedding projection) have the dims in :data:`CONST_VARS`. The container is built
from plain arrays (:meth:`PosteriorDraws.from_arrays`), so anything that can produce numpy
arrays (the flat file, ``bayesirt.posteriors.flat_arrays``, a test) can feed the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .validate import _as_float, _as_ids, _as_index, _metadata_consts

__all__ = ["CONST_VARS", "DRAW_VARS", "POPULATION_VARS", "PosteriorDraws"]

#: Draw variable -> its trailing dims (after the leading draw axis), as in the contract.
DRAW_VARS: dict[str, tuple[str, ...]] = {
    "ability": ("model", "benchmark"),
    "difficulty": ("item",),
    "log_discrimination": ("item",),
    "mu_difficulty": ("benchmark",),
    "sigma_difficulty": ("benchmark",),
    "mu_log_discrimination": ("benchmark",),
    "sigma_log_discrimination": ("benchmark",),
    "ability_pop_loc": ("benchmark",),
    "ability_pop_scale": ("benchmark",),
    "category_offset": ("category",),
    "embedding_coef": ("benchmark", "component"),
    "guess": ("benchmark",),
    "general_ability": ("model",),
    "loading": ("benchmark",),
    "metadata_coef": ("metadata_feature",),
    "org_effect": ("org",),
    "ability_residual_scale": (),
    # The power a of the loadings' population tilt psi^a (``bayesirt.models.population.
    # uniqueness_tilt``); absent (a posterior fitted without it) means 0.
    "loading_uniqueness_power": (),
    # Fraction of (model, benchmark) cells whose ability is an outlier, N(0, 1) whatever the
    # general ability (``bayesirt.models.factor.outlier_configurations``); absent means 0.
    "outlier_fraction": (),
    **{f"benchmark_pop_{key}": () for key in (
        "difficulty_loc", "difficulty_scale",
        "log_sigma_difficulty_loc", "log_sigma_difficulty_scale",
        "log_discrimination_loc", "log_discrimination_scale",
        "log_sigma_log_discrimination_loc", "log_sigma_log_discrimination_scale",
        "logit_loading_loc", "logit_loading_scale",
    )},
}
#: The population-of-benchmarks hyperparameters (scalars per draw), in DRAW_VARS order.
POPULATION_VARS = tuple(n for n in DRAW_VARS if n.startswith("benchmark_pop_"))
#: Draw variables every posterior must have.
_REQUIRED_DRAW_VARS = (
    "ability",
    "difficulty",
    "mu_difficulty",
    "sigma_difficulty",
    "ability_pop_loc",
    "ability_pop_scale",
)
#: Constant (draw-free) array -> its dims.
CONST_VARS: dict[str, tuple[str, ...]] = {
    "item_benchmark": ("item",),
    "item_category": ("item",),
    "category_benchmark": ("category",),
    "embedding_pca_mean": ("embedding_dim",),
    "embedding_pca_components": ("component", "embedding_dim"),
    "embedding_pca_scale": ("component",),
    "metadata_center": ("metadata_feature",),
    "metadata_scale": ("metadata_feature",),
}


@dataclass(frozen=True)
class PosteriorDraws:
    """Posterior draws of a hierarchical IRT model, all arrays with the draws leading.

    Attributes
    ----------
    ability : ndarray, shape (S, n_models, n_benchmarks)
        Logit-scale ability of each model on each benchmark.
    difficulty, log_discrimination : ndarray, shape (S, n_items)
        Parameters of the fitted (known) items; ``log_discrimination`` is 0 for Rasch.
    mu_difficulty, sigma_difficulty : ndarray, shape (S, n_benchmarks)
        Prior of a new item's difficulty on each benchmark.
    mu_log_discrimination, sigma_log_discrimination : ndarray, shape (S, n_benchmarks)
        Prior of a new item's log-discrimination (zeros for Rasch).
    ability_pop_loc, ability_pop_scale : ndarray, shape (S, n_benchmarks)
        Population prior of a new model's ability.
    item_benchmark : ndarray of int, shape (n_items,)
        Benchmark index of each known item.
    model_ids, item_ids, benchmark_ids, category_ids : tuple of str
        Ids labelling the model, item, benchmark and category axes.
    item_category : ndarray of int, shape (n_items,), optional
        Category index of each known item (-1 unknown).
    category_benchmark : ndarray of int, shape (n_categories,), optional
        Benchmark index of each category.
    category_offset : ndarray, shape (S, n_categories), optional
        Added to a new item's prior difficulty mean.
    embedding_coef : ndarray, shape (S, n_benchmarks, n_components), optional
        Embedding regression of a new item's prior difficulty mean.
    embedding_pca_mean : ndarray, shape (embedding_dim,), optional
    embedding_pca_components : ndarray, shape (n_components, embedding_dim), optional
    embedding_pca_scale : ndarray, shape (n_components,), optional
        Projection ``z = ((e - mean) @ components.T) / scale`` of an item embedding ``e``.
    guess : ndarray, shape (S, n_benchmarks), optional
        Lower asymptote per benchmark (absent = 0).
    general_ability : ndarray, shape (S, n_models), optional
        Each model's general ability; with ``loading`` it gives a model's ability prior on a
        benchmark the posterior does not know (:mod:`.newbench`).
    loading : ndarray, shape (S, n_benchmarks), optional
        How much each benchmark's (standardised) ability follows the general one, in (0, 1];
        absent with ``general_ability`` present means 1 (one ability everywhere).
    metadata_coef : ndarray, shape (S, n_features), optional
        Coefficients of the metadata features (``bayesirt.features``) in the prior mean of a
        model's general ability; with ``org_effect`` (S, n_orgs) per organisation of
        ``org_ids``, ``ability_residual_scale`` (S,) the prior sd around that mean, and
        ``metadata_center``, ``metadata_scale`` (n_features,) the features' encoding.
    org_ids : tuple of str
        Organisations the posterior knows (axis of ``org_effect``).
    loading_uniqueness_power : ndarray, shape (S,), optional
        The power ``a`` of the loadings' population tilt: a new benchmark's
        ``logit(rho) ~ N(loc, scale)`` reweighted by ``(1 - rho^2)^a`` (absent: 0).
    outlier_fraction : ndarray, shape (S,), optional
        Probability that a model's ability on a benchmark is an outlier, N(0, 1) whatever
        its general ability (the fit's outlier option; absent: 0). A new benchmark's
        abilities follow the same mixture.
    benchmark_pop_* : ndarray, shape (S,), optional
        The population of benchmarks (:data:`POPULATION_VARS`): location and scale, across
        benchmarks, of the difficulty mean, the log difficulty spread, the
        log-discrimination mean, the log log-discrimination spread and the logit loading.
        Absent (older posteriors, one-benchmark models): a new benchmark's prior is
        moment-matched to the known benchmarks per draw.
    attrs : dict
        Provenance (``model_name``, ``config``, ``fingerprint``, ...); not used in the maths.
    """

    ability: np.ndarray
    difficulty: np.ndarray
    log_discrimination: np.ndarray
    mu_difficulty: np.ndarray
    sigma_difficulty: np.ndarray
    mu_log_discrimination: np.ndarray
    sigma_log_discrimination: np.ndarray
    ability_pop_loc: np.ndarray
    ability_pop_scale: np.ndarray
    item_benchmark: np.ndarray
    model_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    benchmark_ids: tuple[str, ...]
    category_ids: tuple[str, ...] = ()
    item_category: np.ndarray | None = None
    category_benchmark: np.ndarray | None = None
    category_offset: np.ndarray | None = None
    embedding_coef: np.ndarray | None = None
    embedding_pca_mean: np.ndarray | None = None
    embedding_pca_components: np.ndarray | None = None
    embedding_pca_scale: np.ndarray | None = None
    guess: np.ndarray | None = None
    general_ability: np.ndarray | None = None
    loading: np.ndarray | None = None
    metadata_coef: np.ndarray | None = None
    org_effect: np.ndarray | None = None
    ability_residual_scale: np.ndarray | None = None
    loading_uniqueness_power: np.ndarray | None = None
    outlier_fraction: np.ndarray | None = None
    metadata_center: np.ndarray | None = None
    metadata_scale: np.ndarray | None = None
    org_ids: tuple[str, ...] = ()
    benchmark_pop_difficulty_loc: np.ndarray | None = None
    benchmark_pop_difficulty_scale: np.ndarray | None = None
    benchmark_pop_log_sigma_difficulty_loc: np.ndarray | None = None
    benchmark_pop_log_sigma_difficulty_scale: np.ndarray | None = None
    benchmark_pop_log_discrimination_loc: np.ndarray | None = None
    benchmark_pop_log_discrimination_scale: np.ndarray | None = None
    benchmark_pop_log_sigma_log_discrimination_loc: np.ndarray | None = None
    benchmark_pop_log_sigma_log_discrimination_scale: np.ndarray | None = None
    benchmark_pop_logit_loading_loc: np.ndarray | None = None
    benchmark_pop_logit_loading_scale: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict, compare=False)

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        *,
        model_ids: Sequence[str],
        item_ids: Sequence[str],
        benchmark_ids: Sequence[str],
        category_ids: Sequence[str] = (),
        org_ids: Sequence[str] = (),
        attrs: Mapping[str, Any] | None = None,
        **arrays: Any,
    ) -> PosteriorDraws:
        """Build and validate draws from plain arrays (tests, synthetic posteriors, loaders).

        Parameters
        ----------
        model_ids, item_ids, benchmark_ids, category_ids : sequence of str
            Ids of the model, (known) item, benchmark and category axes.
        attrs : mapping, optional
            Provenance attributes.
        **arrays : array_like
            The variables named as the class attributes. Required: ``ability``,
            ``difficulty``, ``mu_difficulty``, ``sigma_difficulty``, ``ability_pop_loc``,
            ``ability_pop_scale``, ``item_benchmark``. ``log_discrimination``,
            ``mu_log_discrimination`` and ``sigma_log_discrimination`` default to zeros
            (Rasch); the others to absent. Unknown names raise.

        Returns
        -------
        PosteriorDraws

        Raises
        ------
        InputError
            On a missing required array, an unknown name, inconsistent shapes, non-finite
            values, negative scales, out-of-range indices or duplicate ids.
        """
        known = set(DRAW_VARS) | set(CONST_VARS)
        unknown = sorted(set(arrays) - known)
        if unknown:
            raise InputError(f"unknown posterior array(s) {unknown}; known: {sorted(known)}")
        for name in (*_REQUIRED_DRAW_VARS, "item_benchmark"):
            if arrays.get(name) is None:
                raise InputError(f"missing required posterior array {name!r}")
        model_ids = _as_ids(model_ids, "model_ids")
        item_ids = _as_ids(item_ids, "item_ids")
        benchmark_ids = _as_ids(benchmark_ids, "benchmark_ids")
        category_ids = _as_ids(category_ids, "category_ids")
        org_ids = _as_ids(org_ids, "org_ids")
        ability = _as_float(arrays["ability"], "ability", ndim=3)
        n_draws, n_models, n_bench = ability.shape
        n_items = len(item_ids)
        if n_models != len(model_ids) or n_bench != len(benchmark_ids):
            raise InputError(
                f"ability has shape {ability.shape} but there are {len(model_ids)} model ids "
                f"and {len(benchmark_ids)} benchmark ids"
            )
        if n_draws < 1:
            raise InputError("the posterior has no draws")
        sizes = {"model": n_models, "item": n_items, "benchmark": n_bench,
                 "category": len(category_ids), "org": len(org_ids)}
        if arrays.get("metadata_coef") is not None:
            sizes["metadata_feature"] = np.shape(arrays["metadata_coef"])[-1]
        out: dict[str, Any] = {"ability": ability}
        for name, dims in DRAW_VARS.items():
            if name == "ability":
                continue
            value = arrays.get(name)
            if value is None:
                if name in ("log_discrimination",):
                    value = np.zeros((n_draws, n_items))
                elif name in ("mu_log_discrimination", "sigma_log_discrimination"):
                    value = np.zeros((n_draws, n_bench))
                else:
                    out[name] = None
                    continue
            value = _as_float(value, name, ndim=1 + len(dims))
            expect = [n_draws] + [sizes.get(d, -1) for d in dims]
            if name == "embedding_coef":
                expect[2] = value.shape[2]
            if list(value.shape) != expect:
                raise InputError(f"{name} has shape {value.shape}, expected {tuple(expect)}")
            out[name] = value
        scales = ("sigma_difficulty", "sigma_log_discrimination", "ability_pop_scale",
                  *(n for n in POPULATION_VARS if n.endswith("_scale")))
        for name in scales:
            if out[name] is not None and np.any(out[name] < 0):
                raise InputError(f"{name} has negative values (a scale must be >= 0)")
        if out["guess"] is not None and np.any((out["guess"] < 0) | (out["guess"] >= 1)):
            raise InputError("guess must lie in [0, 1)")
        if out["loading"] is not None and np.any((out["loading"] <= 0) | (out["loading"] > 1)):
            raise InputError("loading must lie in (0, 1]")
        present = [n for n in POPULATION_VARS if out[n] is not None]
        if present and len(present) != len(POPULATION_VARS):
            missing = sorted(set(POPULATION_VARS) - set(present))
            raise InputError(f"the population of benchmarks is incomplete: missing {missing}")
        item_benchmark = _as_index(arrays["item_benchmark"], "item_benchmark", n_bench)
        if item_benchmark.shape[0] < n_items:
            raise InputError(
                f"item_benchmark has {item_benchmark.shape[0]} entries for {n_items} items"
            )
        # The fit may store item_benchmark over all items (train then test): keep the fitted.
        out["item_benchmark"] = item_benchmark[:n_items]
        n_cat = len(category_ids)
        item_category = arrays.get("item_category")
        if item_category is not None:
            item_category = np.asarray(item_category, dtype=np.int64).reshape(-1)[:n_items]
            if item_category.shape[0] != n_items or np.any(item_category >= n_cat) or np.any(
                item_category < -1
            ):
                raise InputError("item_category has the wrong length or out-of-range values")
        out["item_category"] = item_category
        cb = arrays.get("category_benchmark")
        out["category_benchmark"] = (
            None if cb is None else _as_index(cb, "category_benchmark", n_bench)
        )
        if out["category_offset"] is not None and n_cat == 0:
            raise InputError("category_offset given but no category_ids")
        emb = [arrays.get(n) for n in
               ("embedding_pca_mean", "embedding_pca_components", "embedding_pca_scale")]
        if out["embedding_coef"] is not None:
            if any(e is None for e in emb):
                raise InputError(
                    "embedding_coef needs embedding_pca_mean, embedding_pca_components and "
                    "embedding_pca_scale"
                )
            mean = _as_float(emb[0], "embedding_pca_mean", ndim=1)
            comps = _as_float(emb[1], "embedding_pca_components", ndim=2)
            scale = _as_float(emb[2], "embedding_pca_scale", ndim=1)
            n_comp = out["embedding_coef"].shape[2]
            if comps.shape != (n_comp, mean.shape[0]) or scale.shape != (n_comp,):
                raise InputError(
                    f"embedding projection shapes disagree: coef has {n_comp} components, "
                    f"components {comps.shape}, mean {mean.shape}, scale {scale.shape}"
                )
            if np.any(scale <= 0):
                raise InputError("embedding_pca_scale must be > 0")
            emb = [mean, comps, scale]
        else:
            emb = [None, None, None]
        return cls(
            **{name: out[name] for name in DRAW_VARS},
            item_benchmark=out["item_benchmark"],
            model_ids=model_ids,
            item_ids=item_ids,
            benchmark_ids=benchmark_ids,
            category_ids=category_ids,
            item_category=out["item_category"],
            category_benchmark=out["category_benchmark"],
            embedding_pca_mean=emb[0],
            embedding_pca_components=emb[1],
            embedding_pca_scale=emb[2],
            **_metadata_consts(arrays, out, sizes),
            org_ids=org_ids,
            attrs=dict(attrs or {}),
        )

    # -- basic properties --------------------------------------------------------------------

    @property
    def n_draws(self) -> int:
        """Number of draws ``S``."""
        return int(self.ability.shape[0])

    @property
    def has_population(self) -> bool:
        """Whether the posterior holds the population of benchmarks (hyperparameters)."""
        return self.benchmark_pop_difficulty_loc is not None

    def population(self) -> dict[str, np.ndarray]:
        """Return the population hyperparameters by short name (``difficulty_loc``, ...).

        Returns
        -------
        dict of str to ndarray
            Empty when the posterior has none (:attr:`has_population`).
        """
        if not self.has_population:
            return {}
        return {n[len("benchmark_pop_"):]: getattr(self, n) for n in POPULATION_VARS}

    @property
    def has_embedding(self) -> bool:
        """Whether new items' prior mean uses an embedding regression."""
        return self.embedding_coef is not None

    def arrays(self) -> dict[str, np.ndarray]:
        """Return every present array by its contract name (draw variables and constants)."""
        names = list(DRAW_VARS) + list(CONST_VARS)
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def select(self, index: np.ndarray) -> PosteriorDraws:
        """Return the draws at ``index`` (ints along the draw axis), constants unchanged.

        Parameters
        ----------
        index : ndarray of int, shape (n,)

        Returns
        -------
        PosteriorDraws
        """
        index = np.asarray(index, dtype=np.int64)
        kw = {}
        for name in DRAW_VARS:
            value = getattr(self, name)
            kw[name] = None if value is None else value[index]
        return _replace(self, **kw)

    def thin(self, n: int) -> PosteriorDraws:
        """Keep ``n`` draws evenly spaced over the chain order (all if ``n >= S``).

        Parameters
        ----------
        n : int
            Number of draws to keep, >= 1.

        Returns
        -------
        PosteriorDraws

        Raises
        ------
        InputError
            If ``n < 1``.
        """
        if int(n) != n or n < 1:
            raise InputError(f"thin: n must be a positive integer, got {n!r}")
        if n >= self.n_draws:
            return self
        return self.select(_even_index(self.n_draws, int(n)))


def _replace(draws: PosteriorDraws, **kw: Any) -> PosteriorDraws:
    values = {f: getattr(draws, f) for f in draws.__dataclass_fields__}
    values.update(kw)
    return PosteriorDraws(**values)


def _even_index(n_total: int, n: int) -> np.ndarray:
    return np.unique(np.round(np.linspace(0, n_total - 1, n)).astype(np.int64))
