"""The engine: one call's items as weighted (draw, node) points, conditioned on all labels.

Given ``S`` posterior draws, the probability that model ``m`` answers item ``j``:

* known item: ``p = sum_s w_s P(y=1 | draw s)`` with draw weights ``w_s`` (uniform unless
  labels on known items re-weight them, see below);
* NEW item: within each draw the item's ``(difficulty, log_discrimination)`` is integrated
  over its prior by quadrature (:mod:`.prior`, optionally refined by :mod:`.neighbours`);
* labels revealed on a NEW item condition that item within each draw: each (draw, node)
  gets weight ``w_s * w_q * prod_labels P(y | draw, node)``, on a grid re-centred and
  re-scaled on the item's posterior (labels narrow it); normalising over draws AND nodes is
  exact Bayes for that item's labels (the draws are re-weighted by how well they explain the
  item's labels as well). If the draw part of those weights collapses (effective sample size
  below ``min_ess``), the item falls back to conditioning within each draw only (draw weights
  kept), and a :class:`~.weights.ReweightingWarning` says so;
* labels (or ``evidence``) on KNOWN items re-weight the draws by importance sampling; when
  the effective sample size falls below ``min_ess`` the log-weights are tempered (multiplied
  by the largest ``beta`` in (0, 1] that keeps ESS >= ``min_ess``) and a
  :class:`~.weights.ReweightingWarning` says so: the labels are then used partially rather
  than letting one draw decide;
* models unknown to the posterior get abilities drawn from their posterior per draw
  (:mod:`.unknown`); an :class:`~bayesirt.errors.InputWarning` names those that have no
  responses at all (they get the population prior) and label rows on them.

Performance: new items are integrated within ``item_draws`` evenly spaced draws (default 32:
the quadrature carries the item's uncertainty, the draws only the small ability and
hyper-parameter uncertainty; 16, 32, 64 and 800 draws gave the same log-loss to 1e-3 on
real-multibench-small); nodes whose total weight is negligible (dropped mass <= 1e-9) are
pruned per item; the kernel is float32 ``tanh`` (4x faster than ``expit``); work is done item
by item so memory stays bounded by ``item_draws x n_nodes x n_models_on_item``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError, InputWarning
from .draws import PosteriorDraws, _even_index
from .items import ItemInfo
from .labels import LabelRows, _parse_labels
from .neighbours import NeighbourPrior
from .newbench import new_benchmark_states
from .prior import ItemPrior
from .subjects import ModelInfo, general_ability_prior
from .unknown import UnknownAbilities
from .weights import ReweightingWarning, _ess, _loglik, _normalise_log, _prune, _temper, _wsum


@dataclass
class _ItemState:
    """An item as weighted (draw, node) points: parameters and weights shaped (S_j, N)."""

    bench: int
    s: np.ndarray  # (S_j,) draw indices
    b: np.ndarray  # (S_j, N) difficulty at each node
    alpha: np.ndarray  # (S_j, N) discrimination at each node
    w: np.ndarray  # (S_j, N) normalised weights (sum 1)
    guess: np.ndarray | None  # (S_j,) lower asymptote or None
    offset: np.ndarray | None = None  # (n_models,) local ability offset on a new item


class _Engine:
    """Shared state for predict_pairs and score_pairs (one call's worth of conditioning).

    Parameters
    ----------
    draws : PosteriorDraws
    pair_models, pair_items : ndarray of str (object), shape (n,)
        The pairs of the call (they decide which ids are new/unknown).
    new_items, labels, evidence, quad_nodes, max_draws, min_ess, item_draws, neighbours, \
n_neighbours, new_models
        As in :func:`~.predict.predict_pairs`.

    Raises
    ------
    InputError
        On an item neither known nor in ``new_items``, malformed labels or embeddings, or
        non-positive ``quad_nodes``.
    TypeError
        On ``new_items`` values that are not :class:`~.items.ItemInfo`.
    """

    def __init__(
        self,
        draws: PosteriorDraws,
        pair_models: np.ndarray,
        pair_items: np.ndarray,
        new_items: Mapping[str, ItemInfo] | None,
        labels: Any,
        evidence: Any,
        quad_nodes: tuple[int, int] | int,
        max_draws: int | None,
        min_ess: float,
        item_draws: int | None = 32,
        neighbours: tuple[Any, ...] | None = None,
        n_neighbours: int = 20,
        new_models: Mapping[str, ModelInfo] | None = None,
    ) -> None:
        if isinstance(quad_nodes, (int, np.integer)):
            quad_nodes = (int(quad_nodes), 13)
        q_b, q_l = (int(q) for q in quad_nodes)
        if q_b < 1 or q_l < 1:
            raise InputError(f"quad_nodes must be positive, got {quad_nodes!r}")
        if max_draws is not None:
            draws = draws.thin(max_draws)
        self.d = draws
        self.S = draws.n_draws
        self.min_ess = float(min_ess)
        new_items = dict(new_items or {})
        for key, info in new_items.items():
            if not isinstance(info, ItemInfo):
                raise TypeError(f"new_items[{key!r}] must be an ItemInfo, got {type(info)}")

        lab_m, lab_i, lab_y = _parse_labels(labels, "labels")
        ev_m, ev_i, ev_y = _parse_labels(evidence, "evidence")
        self.lab_m = np.concatenate([lab_m, ev_m])
        self.lab_i = np.concatenate([lab_i, ev_i])
        self.lab_y = np.concatenate([lab_y, ev_y]).astype(np.int8)

        # Items: known -> index into the posterior; new -> index into self.new_ids.
        self.item_index = {i: n for n, i in enumerate(draws.item_ids)}
        all_items = np.concatenate([pair_items, self.lab_i])
        self.new_ids: list[str] = []
        self.new_pos: dict[str, int] = {}
        for pos, item in enumerate(all_items.tolist()):
            if item in self.item_index or item in self.new_pos:
                continue
            if item not in new_items:
                where = "pairs" if pos < len(pair_items) else "labels/evidence"
                row = pos if pos < len(pair_items) else pos - len(pair_items)
                raise InputError(
                    f"item {item!r} ({where} row {row}) is neither in the posterior nor in "
                    "new_items: describe new items with ItemInfo"
                )
            self.new_pos[item] = len(self.new_ids)
            self.new_ids.append(item)

        # Benchmarks: the posterior's, then one column per benchmark it does not know.
        self.bench_index = {b: n for n, b in enumerate(draws.benchmark_ids)}
        K = len(draws.benchmark_ids)
        self.new_bench_ids: list[str] = []
        for i in self.new_ids:
            b = new_items[i].benchmark_id
            if b not in self.bench_index:
                self.bench_index[b] = K + len(self.new_bench_ids)
                self.new_bench_ids.append(b)
        self.new_bench = np.asarray([self.bench_index[new_items[i].benchmark_id]
                                     for i in self.new_ids], dtype=np.int64)

        # Models: the posterior's, plus unknown ones (abilities sampled per draw below), in
        # sorted order so that a model's random stream does not depend on the call's order.
        self.model_index = {m: n for n, m in enumerate(draws.model_ids)}
        self.extra_models: list[str] = sorted(
            set(np.concatenate([pair_models, self.lab_m]).tolist()) - set(self.model_index))
        for n, m in enumerate(self.extra_models):
            self.model_index[m] = len(draws.model_ids) + n
        # Their general-ability prior per draw (from metadata when the posterior has it).
        self.extra_prior = general_ability_prior(draws, self.extra_models, new_models)

        # Label arrays as indices; "known" = known item (its params are in the draws).
        lab_known = np.asarray([i in self.item_index for i in self.lab_i.tolist()], bool)
        self.lab = LabelRows(
            mi=np.asarray([self.model_index[m] for m in self.lab_m.tolist()], np.int64),
            known=lab_known,
            ii=np.asarray(
                [self.item_index[i] if k else self.new_pos[i]
                 for i, k in zip(self.lab_i.tolist(), lab_known.tolist(), strict=True)],
                np.int64),
            sign=(2 * self.lab_y.astype(np.float64) - 1.0),
        )

        # Benchmarks the posterior does not know: drawn from the population of benchmarks
        # and conditioned jointly on their labels (:mod:`.newbench`).
        self.new_bench_states = new_benchmark_states(
            draws, self.new_bench_ids, self.new_ids, self.new_bench, self.lab,
            list(draws.model_ids) + self.extra_models, self.extra_prior)

        # New items' priors and the quadrature nodes; optionally the neighbour refinements.
        self.prior = ItemPrior(draws, self.new_ids, self.new_bench, new_items, q_b, q_l,
                               self.new_bench_states)
        self.neighbour_fit: dict[str, tuple[float, float]] = {}
        self.neighbour_ability_fit: dict[str, float] = {}
        self.neighbour_category_ability_fit: dict[str, float] = {}
        self.model_offset: dict[int, np.ndarray] = {}
        if neighbours is not None and self.new_ids:
            nb = NeighbourPrior(draws, self.new_ids, self.new_bench, new_items, self.item_index,
                                self.model_index)
            nb.fit(self.prior, neighbours, int(n_neighbours))
            self.neighbour_fit, self.neighbour_ability_fit = nb.difficulty_fit, nb.ability_fit
            self.neighbour_category_ability_fit = nb.category_ability_fit
            self.model_offset = nb.model_offset

        described = set(new_models or {}) if draws.metadata_coef is not None else set()
        self._warn_unknown_models(pair_models, n_labels=len(lab_m), described=described)

        self.logw_draw = np.zeros(self.S)
        self.A = UnknownAbilities(draws, self.prior, len(self.extra_models), self.lab,
                                  self.new_bench_states, self.extra_prior,
                                  self.extra_models).build()
        self._reweight_known()
        self.w_draw = _normalise_log(self.logw_draw)
        self.A32 = self.A.astype(np.float32)
        # New items are integrated by quadrature within each of item_draws draws: the draws
        # only carry the ability / hyper-parameter uncertainty, which is small next to a new
        # item's, so a few dozen evenly spaced draws suffice (documented speed trade-off).
        n_sub = self.S if item_draws is None else max(1, min(int(item_draws), self.S))
        self.sub = _even_index(self.S, n_sub)
        # Labels on new items grouped by item.
        new_lab = np.flatnonzero(~self.lab.known)
        order = new_lab[np.argsort(self.lab.ii[new_lab], kind="stable")]
        self.new_lab_groups: dict[int, np.ndarray] = {}
        if order.size:
            keys = self.lab.ii[order]
            cuts = np.flatnonzero(np.diff(keys)) + 1
            for grp in np.split(order, cuts):
                self.new_lab_groups[int(self.lab.ii[grp[0]])] = grp
        self.warned_items: list[str] = []

    def _warn_unknown_models(self, pair_models: np.ndarray, n_labels: int,
                             described: set[str]) -> None:
        """One InputWarning line each for unknown models without evidence: pairs, label rows.

        "Unknown" = neither in the posterior nor among the ``evidence`` models (the training
        responses the posterior lacks, as ``bayesirt.predictive.inputs`` passes them).
        """
        n_known = len(self.d.model_ids)
        if not self.extra_models:
            return
        ev_mi = self.lab.mi[n_labels:]
        with_evidence = set(np.unique(ev_mi[ev_mi >= n_known]).tolist())
        # Models described by metadata that the posterior can use are not "bare".
        bare = [m for m in self.extra_models
                if self.model_index[m] not in with_evidence and m not in described]
        if not bare:
            return
        in_pairs = set(pair_models.tolist())
        lab_mi = self.lab.mi[:n_labels]
        bare_mi = np.asarray([self.model_index[m] for m in bare], dtype=np.int64)
        on_labels = np.isin(lab_mi, bare_mi)
        paired = [m for m in bare if m in in_pairs]
        if paired:
            labelled = set(self.lab_m[:n_labels][on_labels].tolist()) & set(paired)
            given = (f" (for {len(labelled)} of them, given their revealed labels)"
                     if labelled else "")
            warnings.warn(
                f"{len(paired)} model(s) in the pairs are neither in the posterior nor in the "
                f"evidence (training responses): {_few(paired)}; their ability on each "
                "benchmark is drawn from the prior of a new model (the population prior; "
                f"the metadata prior where the posterior has one and new_models describes "
                f"them){given}",
                InputWarning,
                stacklevel=4,
            )
        if on_labels.any():
            rows = np.flatnonzero(on_labels)
            n_models = np.unique(lab_mi[rows]).size
            warnings.warn(
                f"{rows.size} label row(s) are for {n_models} model(s) neither in the "
                f"posterior nor in the evidence (training responses), e.g. "
                f"{self.lab_m[rows[0]]!r}: they are kept; they inform only that model's "
                "ability (population prior times their likelihood) and, on new items, "
                "condition the item like any label",
                InputWarning,
                stacklevel=4,
            )

    # -- importance weights from labels on known items ---------------------------------------

    def _reweight_known(self) -> None:
        """Re-weight the draws by labels on known items (importance sampling, tempered)."""
        # Only (known model, known item) rows: an unknown model's rows already shaped its
        # sampled ability, and using them again here would count them twice.
        rows = np.flatnonzero(self.lab.known & (self.lab.mi < len(self.d.model_ids)))
        if rows.size:
            ll = np.zeros(self.S)
            for chunk in np.array_split(rows, max(1, rows.size // 20000 + 1)):
                j = self.lab.ii[chunk]
                k = self.d.item_benchmark[j]
                a = self.A[:, self.lab.mi[chunk], k]
                x = np.exp(self.d.log_discrimination[:, j]) * (a - self.d.difficulty[:, j])
                g = None if self.prior.guess is None else self.prior.guess[:, k]
                ll += _loglik(x, self.lab.sign[chunk][None, :], g).sum(axis=1)
            self.logw_draw = self.logw_draw + ll
        self.ess_draws = _ess(self.logw_draw)
        target = min(self.min_ess, 0.25 * self.S)
        if self.ess_draws < target:
            beta = _temper(self.logw_draw, target)
            warnings.warn(
                f"importance weights from labels/evidence on known items or unknown models "
                f"collapsed (ESS {self.ess_draws:.1f} of {self.S} draws < {target:.0f}); "
                f"tempering the log-weights by {beta:.3g} so that ESS >= {target:.0f} "
                "(the labels are used partially; refit to use them fully)",
                ReweightingWarning,
                stacklevel=4,
            )
            self.logw_draw = beta * self.logw_draw
            self.ess_draws = _ess(self.logw_draw)

    # -- per-item weighted representations ---------------------------------------------------

    def item_state(self, item: str) -> _ItemState:
        """Return the weighted (draw, node) representation of one item given all labels."""
        if item in self.item_index:
            j = self.item_index[item]
            k = int(self.d.item_benchmark[j])
            s = np.flatnonzero(self.w_draw > 0)
            g = None if self.prior.guess is None else self.prior.guess[s, k]
            w = self.w_draw[s][:, None]
            return _ItemState(k, s, self.d.difficulty[s, j][:, None],
                              np.exp(self.d.log_discrimination[s, j])[:, None], w / w.sum(), g)
        j = self.new_pos[item]
        k = int(self.new_bench[j])
        K = len(self.d.benchmark_ids)
        # An unknown benchmark's values exist only in the draws its chains ran on.
        sub = self.sub if k < K else self.new_bench_states[k - K].sub
        logw_draw = np.log(np.maximum(self.w_draw[sub], 1e-300))
        rows = self.new_lab_groups.get(j)
        if rows is None:
            zb, zl = self.prior.grid(0.0, 1.0, 0.0, 1.0, self.prior.u_b, self.prior.u_l)
            logw = logw_draw[:, None] + self.prior.log_prior(zb, zl, j)[None, :]
        else:
            a_lab = self.A[sub[:, None], self.lab.mi[rows][None, :], k]  # (S_j, L)
            if j in self.model_offset:
                a_lab = a_lab + self.model_offset[j][self.lab.mi[rows]][None, :]
            sign = self.lab.sign[rows]
            zb, zl = self._adapted_grid(j, sub, a_lab, sign)
            logw, lz = self._posterior_logw(j, sub, zb, zl, a_lab, sign, logw_draw)
            if k >= K:
                # The benchmark's chains already conditioned each draw on these labels: the
                # item is conditioned within each draw only (re-weighting the draws by the
                # item's evidence again would count its labels twice).
                logw = logw - lz[:, None]
            else:
                # Exact Bayes re-weights the draws by the item's marginal likelihood lz; if
                # that collapses, keep the draw weights and condition within each draw only.
                target = min(self.min_ess, 0.25 * sub.size)
                if sub.size > 1 and _ess(logw_draw + lz) < target:
                    logw = logw - lz[:, None]
                    self.warned_items.append(item)
        w = _normalise_log(logw)
        # Drop nodes whose total weight is negligible (dropped mass <= _PRUNE_MASS).
        keep = _prune(w.sum(axis=0))
        if keep.size < zb.size:
            w = w[:, keep] / w[:, keep].sum()
            zb, zl = zb[keep], zl[keep]
        b, al = self.prior.node_params(j, sub, zb, zl)
        g = None if self.prior.guess is None else self.prior.guess[sub, k]
        return _ItemState(k, sub, b, al, w, g, self.model_offset.get(j))

    def _posterior_logw(
        self, j: int, sub: np.ndarray, zb: np.ndarray, zl: np.ndarray, a_lab: np.ndarray,
        sign: np.ndarray, logw_draw: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Unnormalised log weights (S_j, N) at the nodes, and each draw's log evidence."""
        k = self.new_bench[j]
        b, al = self.prior.node_params(j, sub, zb, zl)
        x = al[:, None, :] * (a_lab[:, :, None] - b[:, None, :])  # (S_j, L, N)
        g = None if self.prior.guess is None else self.prior.guess[sub, k][:, None, None]
        ll = _loglik(x, sign[None, :, None], g).sum(axis=1)  # (S_j, N)
        lp = self.prior.log_prior(zb, zl, j)[None, :]
        lz = np.logaddexp.reduce(lp + ll, axis=1)
        return logw_draw[:, None] + lp + ll, lz

    def _adapted_grid(self, j: int, sub_all: np.ndarray, a_lab: np.ndarray, sign: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Grid centred and scaled on the labelled item's posterior (pooled over draws).

        Labels narrow the posterior; a grid fixed in prior coordinates would put few nodes
        under it. Two cheap passes on at most 8 draws locate it (wide coarse grid, then a
        grid at +-6 sd of the first estimate); the final grid spans +-6 (difficulty) and +-4
        (log-discrimination) posterior sd around the mean, inflated by 1.25 to cover the
        spread between draws that the 8 draws may miss.
        """
        few = _even_index(sub_all.size, min(8, sub_all.size))
        sub = sub_all[few]
        a_few = a_lab[few]
        zero = np.zeros(sub.size)
        m_b, s_b, m_l, s_l = 0.0, 8.0 / 6.0, 0.0, 1.0
        passes = ((49, 9), (25, 7))
        for n_b, n_l in passes:
            u_l = np.zeros(1) if self.prior.rasch else np.linspace(-4.0, 4.0, n_l)
            zb, zl = self.prior.grid(m_b, s_b, m_l, s_l, np.linspace(-6.0, 6.0, n_b), u_l)
            logw, _ = self._posterior_logw(j, sub, zb, zl, a_few, sign, zero)
            w = _normalise_log(logw.reshape(-1)).reshape(logw.shape).sum(axis=0)
            m_b = float(w @ zb)
            s_b = float(np.sqrt(max(w @ (zb - m_b) ** 2, 0.0)))
            s_b = min(max(s_b, 0.02), 1.0)
            if not self.prior.rasch:
                m_l = float(w @ zl)
                s_l = min(max(float(np.sqrt(max(w @ (zl - m_l) ** 2, 0.0))), 0.05), 1.0)
        return self.prior.grid(m_b, min(1.25 * s_b, 1.0), m_l, min(1.25 * s_l, 1.0), self.prior.u_b,
                          self.prior.u_l)

    def probs(self, st: _ItemState, models: np.ndarray) -> np.ndarray:
        """P(y=1) at every (draw, node) for each model: (S_j * N, n_models), float32.

        float32 and ``sigmoid(x) = (1 + tanh(x / 2)) / 2`` because tanh is ~4x faster than
        expit in numpy; the rounding (~1e-7) is far below the quadrature error.
        """
        a = self.A32[st.s[:, None], models[None, :], st.bench]  # (S_j, n)
        if st.offset is not None:
            a = a + st.offset[models][None, :]
        x = a[:, None, :] - st.b.astype(np.float32)[:, :, None]
        x *= (0.5 * st.alpha).astype(np.float32)[:, :, None]
        np.tanh(x, out=x)
        x += 1.0
        x *= 0.5
        if st.guess is not None:
            g = st.guess.astype(np.float32)[:, None, None]
            x *= 1.0 - g
            x += g
        return x.reshape(-1, models.size)

    def mean_probs(self, st: _ItemState, models: np.ndarray) -> np.ndarray:
        """Posterior predictive P(y=1) for each model on this item: (n_models,) float64."""
        out = np.empty(models.size)
        w = st.w.reshape(-1).astype(np.float32)
        # Chunk over models so the (S_j * N, n) block stays near 64 MB.
        step = max(1, int(16e6 // max(w.size, 1)))
        for lo in range(0, models.size, step):
            out[lo:lo + step] = _wsum(w, self.probs(st, models[lo:lo + step]))
        return out

    def finish_warnings(self) -> None:
        """Warn once for all new items whose labels fell back to within-draw conditioning."""
        if self.warned_items:
            n = len(self.warned_items)
            warnings.warn(
                f"{n} new item(s) (e.g. {self.warned_items[0]!r}) had labels that no draw "
                f"explains well (draw ESS < {self.min_ess:.0f}); they were conditioned within "
                "each draw without re-weighting the draws",
                ReweightingWarning,
                stacklevel=3,
            )


def _few(ids: Sequence[str], n: int = 3) -> str:
    """Format the first ``n`` ids for a one-line message: ``'a', 'b', 'c' and 4 more``."""
    head = ", ".join(repr(i) for i in ids[:n])
    return head + (f" and {len(ids) - n} more" if len(ids) > n else "")
