"""Empirical-Bayes nearest-neighbour refinements of a new item's prediction.

With ``neighbours=`` (the training items' ids and embeddings, optionally their responses),
two terms are fitted on the posterior's own (fitted) items, per benchmark:

* the difficulty prior: a new item's prior mean gains ``lambda_k`` times the mean posterior
  residual of its most similar fitted items (embedding cosine), its prior sd is scaled by the
  matching residual ratio ``rho_k`` (both fitted leave-one-out on the fitted items);
* local ability offsets (with the responses): each model's ability on a new item gains
  ``lambda_k`` times its mean residual ``y - p`` on those neighbours, and, in a benchmark
  with categories, ``kappa_k`` times its mean residual on the fitted items of the new item's
  category (a subject of MMLU-Pro, a task type of BFCL); both fitted jointly by maximum
  likelihood, leave-one-out, and used inside the quadrature, so labels condition on them
  consistently.

Only training items, training responses and the new item's own embedding are used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InputError
from .draws import PosteriorDraws, _even_index
from .items import ItemInfo
from .labels import _parse_labels
from .prior import ItemPrior

#: Whether benchmarks with categories get the category ability offset (``kappa_k``, see
#: :meth:`NeighbourPrior._abilities`); a lever for measuring it, not a user option.
CATEGORY_ABILITY = True
#: How a model's residuals on a group of fitted items (neighbours, a category) become an
#: ability offset before ``lambda_k``/``kappa_k`` scale it: ``"probability"`` the mean of
#: ``y - p``; ``"logit"`` one Newton step of the ability shift from 0, ``sum a (y - p) /
#: (sum a^2 p (1 - p) + 1)`` (score over information, with a unit prior precision). A lever
#: for measuring, not a user option: on the dev set the Newton step was worse at every k
#: (``bench/results/neighbour_levers_dev.md``), so the mean residual stays.
RESIDUAL_SCALE = "probability"


class NeighbourPrior:
    """The neighbour refinements for one engine call (see the module docstring).

    Parameters
    ----------
    draws : PosteriorDraws
        The (thinned) draws.
    new_ids : list of str
        The new items, in engine order.
    new_bench : ndarray of int64, shape (n_new,)
        Their benchmark index (``K`` = unknown benchmark).
    new_items : mapping of str to ItemInfo
        Their descriptions (the embeddings).
    item_index, model_index : dict of str to int
        The engine's item (posterior items) and model (posterior, then unknown) indices.

    Attributes
    ----------
    difficulty_fit : dict of str to (float, float)
        ``(lambda_k, rho_k)`` of the difficulty prior per benchmark fitted.
    ability_fit : dict of str to float
        ``lambda_k`` of the ability offsets per benchmark fitted.
    category_ability_fit : dict of str to float
        ``kappa_k`` of the category ability offsets per benchmark with categories.
    model_offset : dict of int to ndarray of float32, shape (n_models_ext,)
        Local ability offset of every model on new item ``j`` (absent: none).
    """

    def __init__(self, draws: PosteriorDraws, new_ids: list[str], new_bench: np.ndarray,
                 new_items: Mapping[str, ItemInfo], item_index: Mapping[str, int],
                 model_index: Mapping[str, int]) -> None:
        self.d = draws
        self.new_ids = new_ids
        self.new_bench = new_bench
        self.new_items = new_items
        self.item_index = item_index
        self.model_index = model_index
        self.difficulty_fit: dict[str, tuple[float, float]] = {}
        self.ability_fit: dict[str, float] = {}
        self.category_ability_fit: dict[str, float] = {}
        self.model_offset: dict[int, np.ndarray] = {}

    def fit(self, prior: ItemPrior, neighbours: tuple[Any, ...], n_nb: int) -> None:
        """Refine the new items' difficulty prior in ``prior``; fit the ability offsets.

        The model's prior mean for an item (benchmark mean + category offset + embedding
        regression) leaves a residual ``r_j = difficulty_j - mean_j`` on the fitted items.
        Items with similar embeddings have similar residuals beyond what a linear
        regression on a few PCA components captures. Per benchmark, regress each fitted
        item's posterior-mean residual on the mean residual of its ``n_nb`` most
        cosine-similar fitted items (leave-one-out, up to 2,000 items): slope ``lambda_k`` in
        [0, 1] and residual-sd ratio ``rho_k`` in [0.3, 1]. A new item's prior mean then
        gains ``lambda_k * mean(r of its neighbours)`` and its prior sd is scaled by
        ``rho_k``. Only training items and the new item's own embedding are used.

        Parameters
        ----------
        prior : ItemPrior
            Its ``new_mean`` and ``new_sd_scale`` are updated in place.
        neighbours : (item_ids, embeddings) or (item_ids, embeddings, responses)
            See :func:`~.predict.predict_pairs`.
        n_nb : int
            Neighbours per item, >= 1.

        Raises
        ------
        InputError
            On a malformed ``neighbours`` tuple, mismatched shapes or non-finite embeddings.
        """
        new_items = self.new_items
        if n_nb < 1:
            raise InputError(f"n_neighbours must be >= 1, got {n_nb}")
        if not isinstance(neighbours, (tuple, list)) or len(neighbours) not in (2, 3):
            raise InputError(
                "neighbours must be (item_ids, embeddings) or (item_ids, embeddings, "
                f"responses), got {type(neighbours).__name__} of length "
                f"{len(neighbours) if hasattr(neighbours, '__len__') else '?'}")
        ids, emb = neighbours[0], neighbours[1]
        emb = np.asarray(emb, dtype=np.float32)
        ids = [str(i) for i in ids]
        if emb.ndim != 2 or emb.shape[0] != len(ids):
            raise InputError(
                f"neighbours: embeddings shape {emb.shape} does not match {len(ids)} item ids")
        if not np.all(np.isfinite(emb)):
            raise InputError("neighbours: embeddings have non-finite values")
        d = self.d
        rows = np.asarray([self.item_index.get(i, -1) for i in ids])
        ok = rows >= 0
        J = len(d.item_ids)
        E = np.zeros((J, emb.shape[1]), dtype=np.float32)
        have = np.zeros(J, dtype=bool)
        E[rows[ok]] = emb[ok]
        have[rows[ok]] = True
        E /= np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
        # Posterior-mean residual of each fitted item around the model's own prior mean.
        kb = d.item_benchmark
        m = d.mu_difficulty.mean(0)[kb]
        if d.category_offset is not None and d.item_category is not None:
            cat = d.item_category
            m = m + np.where(cat >= 0, d.category_offset.mean(0)[np.maximum(cat, 0)], 0.0)
        if d.embedding_coef is not None and have.any():
            if emb.shape[1] != d.embedding_pca_mean.shape[0]:  # type: ignore[union-attr]
                raise InputError(
                    f"neighbours: embeddings have {emb.shape[1]} dims, the posterior's "
                    f"projection expects {d.embedding_pca_mean.shape[0]}")  # type: ignore
            z = ((np.asarray(emb[ok], np.float64) - d.embedding_pca_mean)
                 @ d.embedding_pca_components.T) / d.embedding_pca_scale  # type: ignore
            coef = d.embedding_coef.mean(0)
            m[rows[ok]] += np.einsum("np,np->n", coef[kb[rows[ok]]], z)
        r = d.difficulty.mean(0) - m
        for k in range(len(d.benchmark_ids)):
            sets = self._neighbour_sets(k, new_items, E, have, n_nb, 2000)
            if sets is None:
                continue
            pool, targets, est, est_nb = sets
            x = r[est_nb].mean(axis=1)
            y = r[est]
            lam = float(np.clip((x @ y) / max(x @ x, 1e-12), 0.0, 1.0))
            rho = float(np.clip(np.sqrt(np.mean((y - lam * x) ** 2) / max(np.mean(y**2), 1e-12)),
                                0.3, 1.0))
            self.difficulty_fit[d.benchmark_ids[k]] = (lam, rho)
            for idx, nb in self._target_neighbours(targets, new_items, E, pool, n_nb):
                prior.shift_means(idx, lam * r[nb].mean(axis=1), rho)
        if len(neighbours) == 3 and neighbours[2] is not None:
            self._abilities(neighbours[2], E, have, n_nb)

    def _neighbour_sets(self, k: int, new_items: Mapping[str, ItemInfo], E: np.ndarray,
                        have: np.ndarray, n_nb: int, n_est: int) -> tuple | None:
        """Benchmark ``k``'s fitted pool, new targets, and leave-one-out neighbours of a sample.

        Returns ``(pool, targets, est, est_nb)``: fitted items of ``k`` with embeddings, new
        items of ``k`` with embeddings, up to ``n_est`` evenly spaced pool items, and each of
        those items' ``n_nb`` most cosine-similar other pool items ``(n_est, n_nb)``; None
        when the pool is too small or there is nothing to predict.
        """
        pool = np.flatnonzero((self.d.item_benchmark == k) & have)
        targets = [n for n in range(len(self.new_ids)) if self.new_bench[n] == k
                   and new_items[self.new_ids[n]].embedding is not None]
        if pool.size < n_nb + 2 or not targets:
            return None
        est = pool[_even_index(pool.size, min(pool.size, n_est))]
        sim = E[est] @ E[pool].T
        sim[np.arange(est.size), np.searchsorted(pool, est)] = -np.inf  # leave one out
        return pool, targets, est, pool[np.argpartition(-sim, n_nb, axis=1)[:, :n_nb]]

    def _target_neighbours(self, targets: list[int], new_items: Mapping[str, ItemInfo],
                           E: np.ndarray, pool: np.ndarray, n_nb: int, chunk: int = 512):
        """Yield ``(target indices, their n_nb nearest pool items)`` in chunks of new items."""
        q = np.stack([np.asarray(new_items[self.new_ids[n]].embedding, np.float32)
                      .reshape(-1) for n in targets])
        if q.shape[1] != E.shape[1]:
            raise InputError(
                f"new item {self.new_ids[targets[0]]!r}: embedding has {q.shape[1]} dims, "
                f"the neighbour embeddings have {E.shape[1]}")
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        for lo in range(0, len(targets), chunk):
            sim = q[lo:lo + chunk] @ E[pool].T
            yield (np.asarray(targets[lo:lo + chunk]),
                   pool[np.argpartition(-sim, n_nb - 1, axis=1)[:, :n_nb]])

    def _abilities(self, responses: Any, E: np.ndarray, have: np.ndarray, n_nb: int) -> None:
        """Empirical-Bayes local ability offsets of each model on each new item.

        The model has one ability per (model, benchmark); models are also better or worse
        at kinds of items within a benchmark (a subject of MMLU-Pro, a task type of BFCL).
        A model's mean residual ``y - p`` (``p`` the posterior-mean fit) on a new item's
        ``n_nb`` most similar fitted items measures that. Per benchmark, the offset
        ``lambda_k * mean residual`` (ability units, ``lambda_k`` in [0, 6]) is fitted by
        maximum likelihood on up to 1,500 fitted items with leave-one-out neighbours, and a
        new item's prediction for model m uses ability ``theta_mk + offset_m``, inside the
        quadrature, so revealed labels condition on it consistently. Models without responses
        on the neighbours get no offset; ``lambda_k = 0`` switches it off where it does not
        help. Uses only training responses and the new item's own embedding.

        In a benchmark with two or more categories a second offset, ``kappa_k`` times the
        model's mean residual on the fitted items of the new item's category (leave-one-out
        when fitting), is fitted jointly with ``lambda_k`` (``kappa_k`` in [0, 10]). Like
        ``lambda_k`` it is fitted only where the benchmark has embedded fitted items, and used
        only for new items with an embedding and a category of that benchmark. Measured
        first with a model-based version: a (model, category) ability in a per-benchmark 2PL
        fitted by SVI on the dev set lowered new-item log-loss by 3-4% at k = 0 / 3 / 10
        (``bench/results/mirt_probe_real-multibench_category.md``), more than a second or
        third ability dimension did (``mirt_probe_real-multibench.md``).

        Parameters
        ----------
        responses : (model_ids, item_ids, y)
            Training responses (e.g. from ``bayesirt.data``); unknown ids are skipped.
        E : ndarray, shape (n_items, d)
            Unit-norm embeddings of the posterior's items (zero rows where ``have`` is False).
        """
        d = self.d
        new_items = self.new_items
        r_m, r_i, r_y = _parse_labels(responses, "neighbour responses")
        mi = np.asarray([self.model_index.get(m, -1) for m in r_m.tolist()])
        ii = np.asarray([self.item_index.get(i, -1) for i in r_i.tolist()])
        keep = (mi >= 0) & (mi < len(d.model_ids)) & (ii >= 0)
        if not keep.any():
            return
        mi, ii, y = mi[keep], ii[keep], r_y[keep].astype(np.float64)
        kb = d.item_benchmark
        theta = d.ability.mean(0)  # (n_models, K)
        b = d.difficulty.mean(0)
        alpha = np.exp(d.log_discrimination.mean(0))
        g = None if d.guess is None else d.guess.mean(0)

        def prob(eta: np.ndarray, k: np.ndarray | int) -> np.ndarray:
            p = 0.5 * (1.0 + np.tanh(0.5 * eta))
            return p if g is None else g[k] + (1.0 - g[k]) * p

        # Dense (model, item) tables: 10 bytes per cell (~18 MB for 131 x 14,086).
        n_models, n_items = len(d.model_ids), len(d.item_ids)
        p_obs = prob(alpha[ii] * (theta[mi, kb[ii]] - b[ii]), kb[ii])
        observed = np.zeros((n_models, n_items), dtype=bool)
        observed[mi, ii] = True
        # resid / weight summed over a group of items is the group's offset before the
        # fitted factor: the mean residual (weight = 1 per answer), or with ``"logit"`` the
        # Newton step (score a (y - p), information a^2 p (1 - p), plus a unit prior
        # precision added in ``ratio``).
        logit_scale = RESIDUAL_SCALE == "logit"
        resid = np.zeros((n_models, n_items), dtype=np.float32)
        weight = np.zeros((n_models, n_items), dtype=np.float32)
        if logit_scale:
            resid[mi, ii] = alpha[ii] * (y - p_obs)
            weight[mi, ii] = alpha[ii] ** 2 * p_obs * (1.0 - p_obs)
        else:
            resid[mi, ii] = y - p_obs
            weight[mi, ii] = 1.0
        y_full = np.zeros((n_models, n_items), dtype=np.int8)
        y_full[mi, ii] = y

        def ratio(total: np.ndarray, w: np.ndarray) -> np.ndarray:
            return total / (w + 1.0) if logit_scale else total / np.maximum(w, 1.0)

        def local_residual(nb: np.ndarray) -> np.ndarray:
            """(n_models, n_targets) offset over each target's neighbours (see ``ratio``)."""
            return ratio(resid[:, nb].sum(axis=-1), weight[:, nb].sum(axis=-1))

        n_total = len(self.model_index)
        grid = np.linspace(0.0, 3.0 if logit_scale else 6.0, 121)
        # Per (model, category): residual sum and count over the fitted items.
        cat = d.item_category
        n_cat = len(d.category_ids)
        multi = np.zeros(len(d.benchmark_ids), dtype=bool)
        if (CATEGORY_ABILITY and cat is not None and n_cat
                and d.category_benchmark is not None):
            per_bench = np.bincount(np.asarray(d.category_benchmark), minlength=multi.size)
            multi = per_bench >= 2
            # Summed per category column by column (no dense item x category table).
            has_cat = np.flatnonzero(cat >= 0)
            cat_sum = np.zeros((n_cat, n_models), dtype=np.float32)
            cat_n = np.zeros((n_cat, n_models), dtype=np.float32)
            np.add.at(cat_sum, cat[has_cat], resid[:, has_cat].T)
            np.add.at(cat_n, cat[has_cat], weight[:, has_cat].T)
            cat_sum, cat_n = cat_sum.T, cat_n.T  # (n_models, n_cat)
        cat_index = {c: n for n, c in enumerate(d.category_ids)}
        for k in range(len(d.benchmark_ids)):
            sets = self._neighbour_sets(k, new_items, E, have, n_nb, 1500)
            if sets is None:
                continue
            pool, targets, est, est_nb = sets
            x = local_residual(est_nb)
            obs = observed[:, est]
            base = (theta[:, k][:, None] - b[est][None, :])[obs]
            a_obs = np.broadcast_to(alpha[est][None, :], obs.shape)[obs]
            x_obs, y_obs = x[obs], y_full[:, est][obs]
            kappa_grid = np.zeros(1)
            xc_obs = np.zeros_like(x_obs)
            if multi[k]:
                kappa_grid = (np.linspace(0.0, 3.0, 61) if logit_scale
                              else np.linspace(0.0, 10.0, 41))
                ce = np.maximum(cat[est], 0)
                # Leave the item itself out of its category's mean residual. (Shrinking a
                # model's mean towards 0 by a prior count of 10 or 40 items, fitted too, moved
                # dev log-loss by <= 0.0002 at 3x the time: not kept.)
                xc = ratio(cat_sum[:, ce] - resid[:, est], cat_n[:, ce] - weight[:, est])
                xc_obs = np.where(cat[est][None, :] >= 0, xc, 0.0)[obs]
            best_lam, best_kappa, best_ll = 0.0, 0.0, -np.inf
            for lam in grid:
                eta = base + lam * x_obs
                p = prob(a_obs * (eta[None, :] + kappa_grid[:, None] * xc_obs[None, :]), k)
                p = np.clip(p, 1e-7, 1 - 1e-7)
                ll = np.sum(y_obs * np.log(p) + (1 - y_obs) * np.log1p(-p), axis=1)
                if float(ll.max()) > best_ll:
                    c = int(np.argmax(ll))
                    best_lam, best_kappa, best_ll = float(lam), float(kappa_grid[c]), float(ll[c])
            self.ability_fit[d.benchmark_ids[k]] = best_lam
            if multi[k]:
                self.category_ability_fit[d.benchmark_ids[k]] = best_kappa
            if best_lam == 0.0 and best_kappa == 0.0:
                continue
            for idx, nb in self._target_neighbours(targets, new_items, E, pool, n_nb, 256):
                off = best_lam * local_residual(nb)
                if best_kappa:
                    tc = np.asarray([cat_index.get(new_items[self.new_ids[n]].category_id or "",
                                                   -1) for n in idx.tolist()])
                    # A category of another benchmark says nothing about this one.
                    tc = np.where((tc >= 0) & (d.category_benchmark[np.maximum(tc, 0)] == k),
                                  tc, -1)
                    tc_ok = np.maximum(tc, 0)
                    mean_c = ratio(cat_sum[:, tc_ok], cat_n[:, tc_ok])
                    off = off + best_kappa * np.where(tc[None, :] >= 0, mean_c, 0.0)
                for c, n in enumerate(idx.tolist()):
                    vec = np.zeros(n_total, dtype=np.float32)
                    vec[:n_models] = off[:, c]
                    self.model_offset[n] = vec
