"""The prior of a new item within each draw, and the quadrature nodes that integrate it.

A NEW item of benchmark ``k`` has, within draw ``s``, the prior
``difficulty ~ Normal(mean_j, sigma_difficulty[s, k])`` and
``log_discrimination ~ Normal(mu_log_discrimination[s, k], sigma_log_discrimination[s, k])``,
``mean_j`` being ``mu_difficulty[s, k]`` plus the category offset and the embedding
regression when the posterior has them (and, with ``neighbours=``, the nearest-neighbour term
of :mod:`.neighbours`). P(correct) is integrated over it with a tensor trapezoid rule in
standardised coordinates: ``quad_nodes`` = 49 x 13 nodes over +-6 x +-4 sd, <= 1e-4 from brute
force (tested). Rasch posteriors (no discrimination spread) use one log-discrimination node.

An item of a benchmark unknown to the posterior uses that benchmark's level parameters drawn
from the population of benchmarks and conditioned on its labels (:mod:`.newbench`), in the
draws its chains ran on: columns ``K, K + 1, ...`` of every benchmark-level array here (one
per unknown benchmark; other draws of those columns are NaN and never used).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import InputError
from . import shape as shape_module
from .draws import PosteriorDraws
from .items import ItemInfo
from .newbench import NewBenchmarkState
from .shape import PriorShape


class ItemPrior:
    """Benchmark-level priors (one column per unknown benchmark), new items' means, the nodes.

    Parameters
    ----------
    draws : PosteriorDraws
        The (thinned) draws, ``S`` of them.
    new_ids : list of str
        The new items of this call, in engine order (index ``j``).
    new_bench : ndarray of int64, shape (n_new,)
        Benchmark index of each new item; ``K + c`` for the c-th unknown benchmark.
    new_items : mapping of str to ItemInfo
        Their descriptions (category, embedding).
    q_b, q_l : int
        Trapezoid nodes for the standardised difficulty and log-discrimination.
    new_bench_states : list of NewBenchmarkState
        The unknown benchmarks' level parameters, in column order.

    Attributes
    ----------
    mu_b, sd_b, mu_l, sd_l, pop_loc, pop_sd : ndarray, shape (S, K + C)
        Difficulty, log-discrimination and ability population priors; columns ``K`` on for
        the ``C`` unknown benchmarks.
    guess : ndarray, shape (S, K + C), or None
        Lower asymptote per benchmark (unknown benchmarks: the mean floor).
    new_mean : ndarray, shape (S, n_new)
        Prior mean of each new item's difficulty, per draw.
    new_sd_scale : ndarray, shape (n_new,)
        Factor on each new item's prior difficulty sd (1 unless the neighbour prior shrinks it).
    rasch : bool
        No discrimination spread: one log-discrimination node.
    u_b, u_l : ndarray
        The trapezoid nodes in standardised coordinates.
    grid0 : (zb, zl, log_prior)
        The coarse fixed grid used for unknown models' abilities (see :mod:`.unknown`).
    """

    def __init__(self, draws: PosteriorDraws, new_ids: list[str], new_bench: np.ndarray,
                 new_items: Mapping[str, ItemInfo], q_b: int, q_l: int,
                 new_bench_states: list[NewBenchmarkState] | None = None) -> None:
        self.d = draws
        self.S = draws.n_draws
        self.new_ids = new_ids
        self.new_bench = new_bench
        self.n_known_bench = len(draws.benchmark_ids)
        self._build_bench_params(new_bench_states or [])
        self.new_mean = self._new_item_means(new_items)
        self.new_sd_scale = np.ones(len(new_ids))
        self._nodes(q_b, q_l)
        self._build_shape(new_items)

    def _build_shape(self, new_items: Mapping[str, ItemInfo]) -> None:
        """Set the empirical prior shape of each new item of a known benchmark (:mod:`.shape`).

        Off (``shape_key`` all None) for unknown benchmarks (no fitted items), when the
        posterior has an embedding regression (the fitted items' embedding terms are not in
        the draws, so their residuals could not be standardised as the model had them), and
        with ``shape.EMPIRICAL_SHAPE`` False.
        """
        d = self.d
        self.shape: PriorShape | None = None
        self.shape_key: list[tuple[int, int] | None] = [None] * len(self.new_ids)
        known = [n for n in range(len(self.new_ids)) if self.new_bench[n] < self.n_known_bench]
        if not (shape_module.EMPIRICAL_SHAPE and known and d.embedding_coef is None):
            return
        kb = d.item_benchmark
        item_mean = d.mu_difficulty[:, kb]
        cat = d.item_category
        if d.category_offset is not None and cat is not None:
            item_mean = item_mean + np.where(
                cat >= 0, d.category_offset[:, np.maximum(cat, 0)], 0.0)
        self.shape = PriorShape(d, item_mean, self.rasch)
        cat_index = {c: n for n, c in enumerate(d.category_ids)}
        for n in known:
            k = int(self.new_bench[n])
            c = cat_index.get(new_items[self.new_ids[n]].category_id or "", -1)
            # A category of another benchmark says nothing about this one.
            if c >= 0 and d.category_benchmark is not None and d.category_benchmark[c] != k:
                c = -1
            key = (k, c)
            self.shape_key[n] = key if key in self.shape.tables else (
                (k, -1) if (k, -1) in self.shape.tables else None)

    def _build_bench_params(self, states: list[NewBenchmarkState]) -> None:
        """Benchmark-level arrays (S, K + C), the unknown benchmarks' columns appended."""
        d = self.d
        C = len(states)

        def widen(known: np.ndarray, fill: str | None) -> np.ndarray:
            out = np.full((self.S, known.shape[1] + C), np.nan)
            out[:, : known.shape[1]] = known
            for c, st in enumerate(states):
                col = known.shape[1] + c
                if fill is not None:
                    out[st.sub, col] = getattr(st, fill)
            return out

        self.mu_b = widen(d.mu_difficulty, "mu_b")
        self.sd_b = widen(d.sigma_difficulty, "sd_b")
        self.mu_l = widen(d.mu_log_discrimination, "mu_l")
        self.sd_l = widen(d.sigma_log_discrimination, "sd_l")
        # Abilities on an unknown benchmark are standardised like every benchmark's.
        self.pop_loc = widen(d.ability_pop_loc, None)
        self.pop_loc[:, self.n_known_bench:] = 0.0
        self.pop_sd = widen(d.ability_pop_scale, None)
        self.pop_sd[:, self.n_known_bench:] = 1.0
        self.guess = None if d.guess is None else np.column_stack(
            [d.guess] + [d.guess.mean(axis=1)] * C)

    def _new_item_means(self, new_items: Mapping[str, ItemInfo]) -> np.ndarray:
        """Prior mean of each new item's difficulty, per draw: (S, n_new)."""
        d = self.d
        n_new = len(self.new_ids)
        mean = self.mu_b[:, self.new_bench] if n_new else np.zeros((self.S, 0))
        if n_new == 0:
            return mean
        mean = mean.copy()
        if d.category_offset is not None:
            cat_index = {c: n for n, c in enumerate(d.category_ids)}
            cats = np.asarray(
                [cat_index.get(new_items[i].category_id or "", -1) for i in self.new_ids])
            have = cats >= 0
            if have.any():
                mean[:, have] += d.category_offset[:, cats[have]]
        if d.embedding_coef is not None:
            dim = d.embedding_pca_mean.shape[0]  # type: ignore[union-attr]
            rows = []
            for n, i in enumerate(self.new_ids):
                e = new_items[i].embedding
                if e is None or self.new_bench[n] >= self.n_known_bench:
                    continue
                e = np.asarray(e, dtype=np.float64).reshape(-1)
                if e.shape[0] != dim:
                    raise InputError(
                        f"new item {i!r}: embedding has {e.shape[0]} dims, the posterior's "
                        f"projection expects {dim}"
                    )
                if not np.all(np.isfinite(e)):
                    raise InputError(f"new item {i!r}: embedding has non-finite values")
                rows.append((n, e))
            if rows:
                idx = np.asarray([r[0] for r in rows])
                emb = np.stack([r[1] for r in rows])
                z = ((emb - d.embedding_pca_mean) @ d.embedding_pca_components.T  # type: ignore
                     ) / d.embedding_pca_scale
                coef = d.embedding_coef[:, self.new_bench[idx], :]  # (S, n, P)
                mean[:, idx] += np.einsum("snp,np->sn", coef, z)
        return mean

    def _nodes(self, q_b: int, q_l: int) -> None:
        """Trapezoid grids in standardised coordinates (u_b over +-6, u_l over +-4).

        A uniform grid is used rather than Gauss-Hermite because the integrand (a logistic
        curve, times the labels' likelihood) is analytic only in a strip: the trapezoid rule
        converges geometrically in the strip width over the spacing, whereas Gauss-Hermite
        with 20 nodes still errs by ~1e-3 when ``exp(ld) * sigma_difficulty`` is ~3.
        """
        self.rasch = bool(np.all(self.d.sigma_log_discrimination == 0))
        if self.rasch:
            q_l = 1  # Rasch / fixed discrimination: no second dimension to integrate
        self.u_b = np.linspace(-6.0, 6.0, q_b) if q_b > 1 else np.zeros(1)
        self.u_l = np.linspace(-4.0, 4.0, q_l) if q_l > 1 else np.zeros(1)
        # The fixed grid for unknown-model abilities (prior-integrated new items).
        zb, zl = self.grid(0.0, 1.0, 0.0, 1.0, self.u_b[:: max(1, q_b // 17)], self.u_l[:1]
                           if self.rasch else np.linspace(-3.0, 3.0, 5))
        self.grid0 = (zb, zl, self.log_prior(zb, zl))

    @staticmethod
    def grid(m_b: float, s_b: float, m_l: float, s_l: float, u_b: np.ndarray,
             u_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tensor grid ``(m_b + s_b u_b) x (m_l + s_l u_l)``, flattened: two (n_b * n_l,)."""
        zb = m_b + s_b * np.repeat(u_b, u_l.size)
        zl = m_l + s_l * np.tile(u_l, u_b.size)
        return zb, zl

    def log_prior(self, zb: np.ndarray, zl: np.ndarray, j: int | None = None) -> np.ndarray:
        """Log prior density (up to a constant) at standardised nodes, (N,).

        Standard normal, times new item ``j``'s empirical shape correction when it has one
        (:mod:`.shape`); ``j`` None: the normal alone.
        """
        lp = -0.5 * zb**2
        if not self.rasch:
            lp = lp - 0.5 * zl**2
        if j is not None and self.shape is not None and self.shape_key[j] is not None:
            lp = lp + self.shape.correction(self.shape_key[j], zb, zl)
        return lp

    def node_params(self, j: int, sub: np.ndarray, zb: np.ndarray,
                    zl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Difficulty and discrimination of new item j at nodes (zb, zl): two (len(sub), N)."""
        k = self.new_bench[j]
        sd = self.sd_b[sub, k] * self.new_sd_scale[j]
        b = self.new_mean[sub, j][:, None] + sd[:, None] * zb[None, :]
        al = np.exp(self.mu_l[sub, k][:, None] + self.sd_l[sub, k][:, None] * zl[None, :])
        return b, al

    def shift_means(self, idx: np.ndarray, shift: np.ndarray, sd_scale: np.ndarray) -> None:
        """Add ``shift`` (n,) to new items ``idx``' prior means and scale their prior sd.

        Used by the neighbour prior (:mod:`.neighbours`); each item is shifted at most once.
        """
        self.new_mean[:, idx] += shift[None, :]
        self.new_sd_scale[idx] = sd_scale
