"""Abilities of models the posterior does not know, drawn per draw from their posterior.

A model unknown to the posterior gets, in each draw, an ability drawn from its posterior
given that draw: the population prior ``Normal(ability_pop_loc, ability_pop_scale)`` times
the likelihood of its responses (labels and evidence; known items exactly, new items with
the item integrated over its prior), sampled by a deterministic stratified inverse-CDF
across draws, so no RNG is needed and the result is reproducible. Its responses do not
re-weight the draws (a "cut", see :meth:`UnknownAbilities._sample_unknown_model`). A model
without responses thus gets the population prior itself.

Every model's ability on a benchmark unknown to the posterior comes from :mod:`.newbench`
(its general ability times the benchmark's loading, conditioned on the benchmark's labels):
columns ``K, K + 1, ...``, NaN outside the draws that benchmark's chains ran on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from .draws import PosteriorDraws
from .labels import LabelRows
from .newbench import NewBenchmarkState
from .prior import ItemPrior
from .weights import _loglik, _normalise_log

# Offsets of the low-discrepancy strata (golden-ratio sequences), so that models and
# benchmarks are not drawn in lockstep.
_GOLDEN = 0.6180339887498949


class UnknownAbilities:
    """The ability array of one engine call (see the module docstring).

    Parameters
    ----------
    draws : PosteriorDraws
        The (thinned) draws, ``S`` of them.
    prior : ItemPrior
        Population priors and the new items' priors.
    n_unknown : int
        Models after the posterior's own in the engine's model index.
    lab : LabelRows
        Labels and evidence as indices; the rows of each unknown model shape its ability.
    new_bench_states : list of NewBenchmarkState, optional
        Every model's abilities on the unknown benchmarks, in column order.
    general_prior : (mean, var), each ndarray (S, n_unknown), optional
        The unknown models' general-ability prior (:func:`.subjects.general_ability_prior`);
        with the posterior's loadings it gives each benchmark's ability prior. Without it (or
        without general abilities in the posterior) the population prior
        ``Normal(ability_pop_loc, ability_pop_scale)`` is used.
    unknown_ids : sequence of str, optional
        The unknown models' ids (length ``n_unknown``): each model's strata are offset by a
        hash of its own id, so its abilities do not depend on which other unknown models a
        call names (the streaming protocol needs predictions that are pure functions of
        their inputs). Without ids, offsets follow the engine index.
    """

    def __init__(self, draws: PosteriorDraws, prior: ItemPrior, n_unknown: int,
                 lab: LabelRows, new_bench_states: list[NewBenchmarkState] | None = None,
                 general_prior: tuple[np.ndarray, np.ndarray] | None = None,
                 unknown_ids: Sequence[str] | None = None) -> None:
        self.unknown_ids = None if unknown_ids is None else [str(m) for m in unknown_ids]
        self.new_bench_states = new_bench_states or []
        self.general_prior = general_prior
        self.d = draws
        self.S = draws.n_draws
        self.prior = prior
        self.n_unknown = n_unknown
        self.lab = lab

    def build(self) -> np.ndarray:
        """Ability array (S, n_models_ext, K + C): posterior, unknown models and benchmarks.

        Returns
        -------
        ndarray of float64, shape (S, n_models + n_unknown, K + C)
        """
        d = self.d
        S = self.S
        n_known = len(d.model_ids)
        M = n_known + self.n_unknown
        K = len(d.benchmark_ids)
        A = np.full((S, M, K + len(self.new_bench_states)), np.nan)
        A[:, :n_known, :K] = d.ability
        for c, st in enumerate(self.new_bench_states):
            A[st.sub, :, K + c] = st.ability
        self.A = A
        for n in range(self.n_unknown):
            self._sample_unknown_model(n_known + n)
        return A

    def _strata(self, offsets: np.ndarray) -> np.ndarray:
        """Low-discrepancy uniforms (S, len(offsets)) in (0, 1): one stratum per draw."""
        s = np.arange(self.S)[:, None]
        base = (s + 0.5) / self.S
        return np.mod(base + offsets[None, :], 1.0).clip(0.5 / self.S, 1 - 0.5 / self.S)

    def _sample_unknown_model(self, mi: int) -> None:
        """Draw model ``mi``'s ability per (draw, benchmark) from its conditional posterior."""
        rows = np.flatnonzero(self.lab.mi == mi)
        known = self.lab.known[rows]
        jj = self.lab.ii[rows]
        new_bench = self.prior.new_bench
        kb = np.where(known, self.d.item_benchmark[np.where(known, jj, 0)],
                      new_bench[np.where(known, 0, jj)] if new_bench.size else -1)
        for k in range(len(self.d.benchmark_ids)):  # unknown benchmarks: see .newbench
            on_k = rows[kb == k]
            # Coarse grid over +-6 prior sd, then a fine one over +-6 posterior sd around the
            # posterior mean (the posterior is narrow once the model has many responses).
            grid = np.linspace(-6.0, 6.0, 41)
            if on_k.size:
                logp, _ = self._ability_logpost(k, grid, rows, known, kb, mi)
                w = _normalise_log(logp.reshape(-1)).reshape(logp.shape).sum(axis=0)
                m = float(w @ grid)
                sdp = float(np.sqrt(max(w @ (grid - m) ** 2, 0.0)))
                grid = m + max(1.25 * sdp, 0.02) * np.linspace(-6.0, 6.0, 81)
            logp, a = self._ability_logpost(k, grid, rows, known, kb, mi)
            mx = logp.max(axis=1, keepdims=True)
            cdf = np.cumsum(np.exp(logp - mx), axis=1)
            # The draws are NOT re-weighted by this model's marginal likelihood ("cut"): one
            # new model says little about the population, and with hundreds of responses the
            # weights would collapse onto a few draws for no real gain.
            cdf = cdf / cdf[:, -1:]
            u = self._strata(np.array([(self._offset(mi) + k * 0.3819660112501051) % 1.0]))[:, 0]
            pos = (cdf < u[:, None]).sum(axis=1).clip(0, grid.size - 1)
            self.A[:, mi, k] = a[np.arange(self.S), pos]

    def _offset(self, mi: int) -> float:
        """Stratum offset of unknown model ``mi`` in [0, 1): from its id when known."""
        if self.unknown_ids is None:
            return (mi * _GOLDEN) % 1.0
        name = self.unknown_ids[mi - len(self.d.model_ids)]
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") / 2.0**64

    def _prior(self, mi: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Ability prior (loc, sd), each (S, 1), of unknown model ``mi`` on benchmark ``k``."""
        if self.general_prior is None or self.d.general_ability is None:
            return self.prior.pop_loc[:, k][:, None], self.prior.pop_sd[:, k][:, None]
        n = mi - len(self.d.model_ids)
        mean, var = self.general_prior[0][:, n], self.general_prior[1][:, n]
        rho = np.ones(self.S) if self.d.loading is None else self.d.loading[:, k]
        return (rho * mean)[:, None], np.sqrt(rho**2 * var + 1.0 - rho**2)[:, None]

    def _ability_logpost(self, k: int, grid: np.ndarray, rows: np.ndarray, known: np.ndarray,
                         kb: np.ndarray, mi: int) -> tuple[np.ndarray, np.ndarray]:
        """Log posterior (S, G) of unknown model ``mi``'s ability at ``loc + sd * grid``."""
        loc, sd = self._prior(mi, k)
        a = loc + sd * grid[None, :]  # (S, G)
        logp = np.broadcast_to(-0.5 * grid**2, a.shape).copy()
        g = None if self.prior.guess is None else self.prior.guess[:, k][:, None, None]
        on_known = rows[known & (kb == k)]
        for chunk in np.array_split(on_known, max(1, on_known.size // 32)):
            if chunk.size == 0:
                continue
            j = self.lab.ii[chunk]
            x = np.exp(self.d.log_discrimination[:, j])[:, :, None] * (
                a[:, None, :] - self.d.difficulty[:, j][:, :, None])  # (S, c, G)
            logp += _loglik(x, self.lab.sign[chunk][None, :, None], g).sum(axis=1)
        for r in rows[~known & (kb == k)]:
            # The new item integrated over its prior (its other labels ignored here).
            zb, zl, lprior = self.prior.grid0
            b, al = self.prior.node_params(self.lab.ii[r], np.arange(self.S), zb, zl)  # (S, Q)
            x = al[:, None, :] * (a[:, :, None] - b[:, None, :])
            lw = lprior - np.logaddexp.reduce(lprior)
            ll = _loglik(x, self.lab.sign[r], g) + lw
            logp += np.logaddexp.reduce(ll, axis=2)
        return logp, a
