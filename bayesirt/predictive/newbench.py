r"""Benchmarks the posterior does not know: drawn from the population, conditioned jointly.

A NEW benchmark ``c`` gets, within each posterior draw ``s``,

* its level parameters from the population of benchmarks:
  :math:`\mu^b_c \sim N(m_b, s_b)`, :math:`\log\sigma^b_c \sim N(m_{\sigma b}, s_{\sigma b})`,
  :math:`\mu^a_c \sim N(m_a, s_a)`, :math:`\log\sigma^a_c \sim N(m_{\sigma a}, s_{\sigma a})`,
  :math:`\operatorname{logit}\rho_c \sim N(m_\rho, s_\rho)` tilted by :math:`(1 - \rho_c^2)^a`
  as in the fit (``loading_uniqueness_power``; :func:`tilted_logit_quantiles`) (the draw's
  hyperparameters; a posterior without them gets a normal moment-matched to its benchmarks
  in that draw);
* each model's ability from its general ability, as in the fitted model:
  :math:`\theta_{mc} = \rho_c\eta_m + \sqrt{1 - \rho_c^2}\,\varepsilon_{mc}` (a model the
  posterior does not know: :math:`\eta_m \sim N(0, 1)`, so :math:`\theta_{mc} \sim N(0, 1)`);
  With the fit's outlier option (``outlier_fraction`` :math:`\pi`) a model is, with
  probability :math:`\pi`, an outlier there: :math:`\theta_{mc} \sim N(0, 1)`, untied
  from its general ability (labelled models: an exact indicator step in the chain);
* its items from :math:`b_j \sim N(\mu^b_c, \sigma^b_c)`,
  :math:`\log a_j \sim N(\mu^a_c, \sigma^a_c)` (integrated by the engine's quadrature).

Labels on its items condition all of these jointly: the level parameters, the labelled
models' abilities and the labelled items form a latent model with crossed model and item
effects, so no per-item quadrature is exact. The approximation chosen: within each draw, a
short Metropolis-within-Gibbs chain (numpy, vectorised over draws) on
:math:`(\mu^b_c, \log\sigma^b_c, \mu^a_c, \log\sigma^a_c, \operatorname{logit}\rho_c,
\theta_{\cdot c}, b_\cdot, \log a_\cdot)` of the labelled models and items, whose final state
is that draw's sample. Blocks: the abilities (independent given the items), the items'
difficulties and log-discriminations (independent given the abilities), the level
parameters (normal means exactly, spreads and loading by random-walk Metropolis), and a
translation move that shifts abilities, difficulties and :math:`\mu^b_c` together (the
likelihood sees only :math:`\theta - b`, so this direction is otherwise crossed slowly).
Step sizes adapt during burn-in towards an acceptance rate of 0.44 and are then frozen, so
the kept state is from a fixed Markov kernel. It is checked against a NUTS refit that
includes the labels (``tests/test_newbench.py``, ``bench/results/lobo.md``).

The random numbers come from a generator seeded by the call's benchmark ids and labels, so
the same inputs give the same predictions in any process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from .draws import PosteriorDraws, _even_index
from .gibbs import Gibbs, log_uniqueness, sigmoid
from .labels import LabelRows

#: Chains (one per posterior draw used) for a labelled new benchmark.
N_CHAINS = 128


@dataclass
class NewBenchmarkState:
    """One new benchmark within each of the draws ``sub``: level parameters and abilities.

    Attributes
    ----------
    sub : ndarray of int64, shape (S_c,)
        The posterior draws these values belong to.
    mu_b, sd_b, mu_l, sd_l, loading : ndarray, shape (S_c,)
        Difficulty mean and spread, log-discrimination mean and spread, loading.
    ability : ndarray, shape (S_c, n_models_ext)
        Every model's ability on the benchmark (labelled ones conditioned).
    """

    sub: np.ndarray
    mu_b: np.ndarray
    sd_b: np.ndarray
    mu_l: np.ndarray
    sd_l: np.ndarray
    loading: np.ndarray
    ability: np.ndarray


class NewBenchmarks:
    """Draw and condition the benchmarks of one engine call that the posterior lacks.

    Parameters
    ----------
    draws : PosteriorDraws
        The (thinned) draws, ``S`` of them.
    model_ids : sequence of str
        The engine's models: the posterior's, then unknown ones.
    guess : ndarray, shape (S,), or None
        Lower asymptote used on new benchmarks (the posterior's mean floor), or None.
    """

    def __init__(self, draws: PosteriorDraws, model_ids: Sequence[str],
                 guess: np.ndarray | None) -> None:
        self.d = draws
        self.S = draws.n_draws
        self.model_ids = [str(m) for m in model_ids]
        self.M = len(self.model_ids)
        self.guess = guess
        self.rasch = bool(np.all(draws.sigma_log_discrimination == 0))

    # -- the population ----------------------------------------------------------------------

    def population(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per draw, (loc, scale) of each level parameter across benchmarks, each (S,).

        From the posterior's population hyperparameters when it has them; otherwise the
        moment-matched normal of its benchmarks' values in that draw (one benchmark: scale
        0, the new benchmark is that benchmark).
        """
        d = self.d
        if d.has_population:
            p = d.population()
            out = {
                "mu_b": (p["difficulty_loc"], p["difficulty_scale"]),
                "log_sd_b": (p["log_sigma_difficulty_loc"], p["log_sigma_difficulty_scale"]),
                "mu_l": (p["log_discrimination_loc"], p["log_discrimination_scale"]),
                "log_sd_l": (p["log_sigma_log_discrimination_loc"],
                             p["log_sigma_log_discrimination_scale"]),
                "logit_rho": (p["logit_loading_loc"], p["logit_loading_scale"]),
            }
        else:
            def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                return x.mean(axis=1), x.std(axis=1)

            out = {
                "mu_b": moments(d.mu_difficulty),
                "log_sd_b": moments(np.log(d.sigma_difficulty)),
                "mu_l": moments(d.mu_log_discrimination),
                "log_sd_l": (moments(np.log(d.sigma_log_discrimination)) if not self.rasch
                             else (np.zeros(self.S), np.zeros(self.S))),
                "logit_rho": (moments(_logit(d.loading)) if d.loading is not None
                              else (np.zeros(self.S), np.zeros(self.S))),
            }
        if self.rasch:
            out["mu_l"] = (np.zeros(self.S), np.zeros(self.S))
        return out

    def uniqueness_power(self) -> np.ndarray:
        """Per draw, the power ``a`` of the loadings' tilt ``(1 - rho^2)^a``, (S,) (0: none).

        Only a posterior that holds its population tilts it: without one, the normal is
        moment-matched to the fitted loadings themselves, which already carry the tilt.
        """
        a = self.d.loading_uniqueness_power
        if a is None or not self.d.has_population:
            return np.zeros(self.S)
        return np.asarray(a, dtype=np.float64)

    def _general(self) -> tuple[np.ndarray, np.ndarray] | None:
        """General abilities (S, n_models) and whether the loading is fixed at 1, or None."""
        d = self.d
        if d.general_ability is None:
            return None
        return d.general_ability, np.asarray(d.loading is None)

    # -- one benchmark -----------------------------------------------------------------------

    def draw(self, key: str, lab_models: np.ndarray, lab_items: np.ndarray,
             lab_sign: np.ndarray,
             extra_prior: tuple[np.ndarray, np.ndarray] | None = None) -> NewBenchmarkState:
        """Level parameters and abilities of new benchmark ``key`` given its labels.

        The result depends only on the posterior, ``key``, the labels' content and the
        models' ids (not on the order of the labels or on the other models and items of the
        call): rows are put in a canonical order and the generator is seeded from them.

        Parameters
        ----------
        key : str
            The benchmark id.
        lab_models : ndarray of int64, shape (L,)
            Engine model index of each label on this benchmark's items.
        lab_items : ndarray of str, shape (L,)
            Item id of each label.
        lab_sign : ndarray of float64, shape (L,)
            ``2 y - 1``.
        extra_prior : (mean, var), each ndarray (S, n_unknown), optional
            General-ability prior of the models after the posterior's own (default N(0, 1)).

        Returns
        -------
        NewBenchmarkState
        """
        lab_items = np.asarray([str(i) for i in lab_items], dtype=object)
        lab_model_ids = np.asarray([self.model_ids[m] for m in lab_models], dtype=object)
        order = sorted(range(lab_models.size),
                       key=lambda r: (lab_model_ids[r], lab_items[r], lab_sign[r]))
        lab_models, lab_items, lab_sign = (lab_models[order], lab_items[order],
                                           lab_sign[order])
        rng = np.random.default_rng(_seed(key, lab_model_ids[order], lab_items, lab_sign))
        n_lab = lab_models.size
        sub = _even_index(self.S, min(self.S, N_CHAINS))
        S = sub.size
        pop = {k: (loc[sub], scale[sub]) for k, (loc, scale) in self.population().items()}
        # Stratified normal quantiles (randomly paired with the draws): every parameter's and
        # every model's numbers cover their distribution evenly, so 128 chains carry little
        # Monte Carlo error in a prediction without labels.
        z = _stratified_normal(rng, S, len(pop))
        state = {k: loc + scale * z[:, n] for n, (k, (loc, scale)) in enumerate(pop.items())}
        tilt = self.uniqueness_power()[sub]
        if np.any(tilt > 0):
            # The loadings' population is the normal tilted by (1 - rho^2)^a: the same
            # stratified quantiles, taken of the tilted distribution.
            loc, scale = pop["logit_rho"]
            column = list(pop).index("logit_rho")
            state["logit_rho"] = tilted_logit_quantiles(loc, scale, tilt, ndtr(z[:, column]))
        general = self._general()
        n_known = len(self.d.model_ids)
        # Every model's general ability: known ones from the draws (variance 0), unknown ones
        # from their prior (metadata, or N(0, 1)).
        eta = np.zeros((S, self.M))
        eta_var = np.ones((S, self.M))
        if extra_prior is not None and self.M > n_known:
            eta[:, n_known:] = extra_prior[0][sub]
            eta_var[:, n_known:] = extra_prior[1][sub]
        if general is not None:
            eta[:, :n_known] = general[0][sub]
            eta_var[:, :n_known] = 0.0
            if bool(general[1]):  # one ability everywhere (Rasch, 2PL): loading 1, fixed
                pop["logit_rho"] = (np.full(S, np.inf), np.zeros(S))
                state["logit_rho"] = np.full(S, np.inf)
        else:
            # No general ability in the posterior: every model's ability ~ N(0, 1).
            pop["logit_rho"] = (np.full(S, -np.inf), np.zeros(S))
            state["logit_rho"] = np.full(S, -np.inf)
        guess = None if self.guess is None else self.guess[sub]
        outlier = (None if self.d.outlier_fraction is None
                   else np.asarray(self.d.outlier_fraction, np.float64)[sub])
        if n_lab:
            chain = Gibbs(rng, pop, state, eta, eta_var, lab_models, lab_items, lab_sign,
                           guess, self.rasch, rho_tilt=tilt, outlier=outlier)
            chain.run()
            state, theta_lab, lab_m = chain.state, chain.theta, chain.models
        else:
            theta_lab, lab_m = np.zeros((S, 0)), np.zeros(0, np.int64)
        rho = sigmoid(state["logit_rho"])
        # Abilities of the models without labels here: their prior given the loading.
        # Known models' columns, then each unknown model's from its own id: a model's
        # numbers do not depend on which other models the call names.
        eps = np.empty((S, self.M))
        eps[:, :n_known] = _stratified_normal(rng, S, n_known)
        # Outlier option: which chains make the model an outlier there (ability eps alone),
        # from stratified uniforms so that each model is one in a fraction pi of the chains.
        out_u = None if outlier is None else np.empty((S, self.M))
        if out_u is not None:
            out_u[:, :n_known] = ndtr(_stratified_normal(rng, S, n_known))
        for m in range(n_known, self.M):
            own = np.random.default_rng(_seed(key, [self.model_ids[m]], [""], [0.0]))
            eps[:, m] = _stratified_normal(own, S, 1)[:, 0]
            if out_u is not None:
                out_u[:, m] = ndtr(_stratified_normal(own, S, 1)[:, 0])
        r2 = (rho**2)[:, None]
        ability = rho[:, None] * eta + np.sqrt(np.maximum(1.0 - r2 + r2 * eta_var, 0.0)) * eps
        if out_u is not None:
            ability = np.where(out_u < outlier[:, None], eps, ability)
        ability[:, lab_m] = theta_lab
        sd_l = np.zeros(S) if self.rasch else np.exp(state["log_sd_l"])
        return NewBenchmarkState(sub=sub, mu_b=state["mu_b"], sd_b=np.exp(state["log_sd_b"]),
                                 mu_l=state["mu_l"], sd_l=sd_l, loading=rho, ability=ability)


def new_benchmark_states(draws: PosteriorDraws, new_bench_ids: list[str], new_ids: list[str],
                         new_bench: np.ndarray, lab: LabelRows, model_ids: Sequence[str],
                         extra_prior: tuple[np.ndarray, np.ndarray] | None = None
                         ) -> list[NewBenchmarkState]:
    """Level parameters and abilities of each unknown benchmark of a call, given its labels.

    Parameters
    ----------
    draws : PosteriorDraws
    new_bench_ids : list of str
        The unknown benchmarks, in column order (column ``K + c``).
    new_ids : list of str
        The call's new items; ``new_bench`` (n_new,) their benchmark columns.
    new_bench : ndarray of int64, shape (n_new,)
    lab : LabelRows
        The call's labels and evidence as indices.
    model_ids : sequence of str
        The engine's models (the posterior's, then unknown ones), by engine index.
    extra_prior : (mean, var), each ndarray (S, n_unknown), optional
        The unknown models' general-ability prior (:func:`.subjects.general_ability_prior`).

    Returns
    -------
    list of NewBenchmarkState, one per unknown benchmark
    """
    if not new_bench_ids:
        return []
    nb = NewBenchmarks(draws, model_ids,
                       None if draws.guess is None else draws.guess.mean(axis=1))
    K = len(draws.benchmark_ids)
    new_rows = np.flatnonzero(~lab.known)
    row_bench = new_bench[lab.ii[new_rows]] if new_rows.size else new_rows
    states = []
    for c, key in enumerate(new_bench_ids):
        rows = new_rows[row_bench == K + c]
        item_ids = np.asarray([new_ids[j] for j in lab.ii[rows]], dtype=object)
        states.append(nb.draw(key, lab.mi[rows], item_ids, lab.sign[rows], extra_prior))
    return states


def tilted_logit_quantiles(loc: np.ndarray, scale: np.ndarray, power: np.ndarray,
                           u: np.ndarray) -> np.ndarray:
    """Quantiles ``u`` of N(loc, scale) tilted by (1 - sigmoid(x)^2)^power, per draw.

    Parameters
    ----------
    loc, scale, power, u : ndarray, shape (S,)

    Returns
    -------
    ndarray, shape (S,)
        By inverse CDF on a grid of 1,601 points over +-8 sd (the tilt only lowers the
        upper tail, so the grid holds the mass).
    """
    g = np.linspace(-8.0, 8.0, 1601)
    x = loc[:, None] + scale[:, None] * g[None, :]
    log_dens = -0.5 * g[None, :] ** 2 + power[:, None] * log_uniqueness(x)
    dens = np.exp(log_dens - log_dens.max(axis=1, keepdims=True))
    cdf = np.cumsum(dens, axis=1)
    cdf = (cdf - 0.5 * dens) / cdf[:, -1:]
    return np.asarray([np.interp(u[s], cdf[s], x[s]) for s in range(loc.shape[0])])


def _stratified_normal(rng: np.random.Generator, n_draws: int, n_columns: int) -> np.ndarray:
    """(n_draws, n_columns): each column the n_draws normal quantiles in a random order."""
    q = ndtri((np.arange(n_draws) + 0.5) / n_draws)
    return np.stack([q[rng.permutation(n_draws)] for _ in range(n_columns)], axis=1) if (
        n_columns) else np.zeros((n_draws, 0))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(p) - np.log1p(-p)


def _seed(key: str, models: Sequence[str], items: Sequence[str], sign: Sequence[float]) -> int:
    """Return a seed from the benchmark id and its labels' content (order-independent)."""
    rows = sorted(zip((str(m) for m in models), (str(i) for i in items),
                      (int(v > 0) for v in sign), strict=True))
    h = hashlib.sha256(key.encode())
    for m, i, y in rows:
        h.update(f"{m}\x1f{i}\x1f{y}\x1e".encode())
    return int.from_bytes(h.digest()[:8], "little")
