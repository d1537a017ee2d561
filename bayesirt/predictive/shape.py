"""The empirical shape of a new item's prior: how the fitted items of its category spread.

The model's item prior is normal within a benchmark: ``difficulty ~ Normal(category mean,
sigma_difficulty)`` and ``log_discrimination ~ Normal(mu, sigma)``, one spread per benchmark
and independent coordinates. The fitted items say otherwise where the data are rich: BFCL's
task types differ in spread (one holds items every model solves), MMLU-Pro's difficulties are
flatter than normal (kurtosis -0.7 on the dev set), and difficulty and discrimination are
correlated in GSM8K (-0.28). A new item is one more item of its category, so its prior should
be the distribution its category's items actually have.

Per group (a benchmark, and each category of a benchmark with two or more categories), the
fitted items' parameters are standardised within each draw exactly as a new item's nodes are,
``u_b = (difficulty - prior mean) / sigma_difficulty`` and ``u_l = (log_discrimination - mu) /
sigma``, pooled over draws and items (the posterior's estimate of the population the items
come from), and smoothed by a Gaussian kernel (Silverman bandwidth from the number of items,
the points pulled in by ``1 / sqrt(1 + h^2)`` so the smoothing adds no spread). A group's
density leans on its parent's by item count, ``n / (n + PRIOR_COUNT)`` its own: a category on
its benchmark, a benchmark on the model's normal, so a small group stays near the model's
prior; every density keeps ``FLOOR`` of the model's normal so no node's weight is zero. The
result is a log-density correction ``log f(u) - log phi(u)`` on a lookup grid, read off by
bilinear interpolation at any node; where it is switched off the correction is 0 and the
prior is the model's.

Measured on the dev set's posterior with a probe (``bench/results/item_prior_shape.md``).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from .draws import PosteriorDraws

#: Whether new items of known benchmarks get the empirical prior shape (a lever for
#: measuring it, not a user option).
EMPIRICAL_SHAPE = True
#: Items a category's density is worth, relative to its benchmark's, at equal weight.
PRIOR_COUNT = 20.0
#: Fraction of the model's normal kept in every density (no zero weights at any node).
FLOOR = 0.05
#: Factor on Silverman's bandwidth (0.5 / 1 / 2 measured: ``item_prior_shape.md``).
BANDWIDTH_FACTOR = 1.0
#: Lookup grid: standardised difficulty and log-discrimination.
U_B = np.linspace(-10.0, 10.0, 201)
U_L = np.linspace(-6.0, 6.0, 61)
#: Most (draw, item) points binned per group (evenly spaced draws beyond it).
MAX_POINTS = 400_000


class PriorShape:
    """Log-density corrections per group (a benchmark, a category of one).

    Parameters
    ----------
    draws : PosteriorDraws
        The posterior draws (``S`` of them).
    item_mean : ndarray, shape (S, n_items)
        Each fitted item's prior difficulty mean per draw (benchmark mean + category
        offset), as the model had it.
    rasch : bool
        No discrimination spread: the shape is one-dimensional (difficulty only).

    Attributes
    ----------
    tables : dict of (int, int) to ndarray, shape (len(U_B), len(U_L)) or (len(U_B),)
        Correction per ``(benchmark, category)`` (category -1: the benchmark's own).
    """

    def __init__(self, draws: PosteriorDraws, item_mean: np.ndarray, rasch: bool) -> None:
        self.rasch = rasch
        self.tables: dict[tuple[int, int], np.ndarray] = {}
        d = draws
        kb = d.item_benchmark
        sd_b = d.sigma_difficulty[:, kb]
        with np.errstate(divide="ignore", invalid="ignore"):
            u_b = (d.difficulty - item_mean) / sd_b
            u_l = None
            if not rasch:
                u_l = ((d.log_discrimination - d.mu_log_discrimination[:, kb])
                       / d.sigma_log_discrimination[:, kb])
        cat = d.item_category
        multi = np.zeros(len(d.benchmark_ids), dtype=bool)
        if cat is not None and d.category_benchmark is not None and len(d.category_ids):
            multi = np.bincount(np.asarray(d.category_benchmark),
                                minlength=multi.size) >= 2
        finite = np.isfinite(u_b).all(axis=0)
        if u_l is not None:
            finite &= np.isfinite(u_l).all(axis=0)
        normal = np.exp(_log_normal(rasch))
        for k in range(len(d.benchmark_ids)):
            items = np.flatnonzero((kb == k) & finite)
            if items.size == 0:
                continue
            dens_k = _mix(self._density(u_b, u_l, items), normal, items.size)
            self.tables[(k, -1)] = self._correction(dens_k)
            if not multi[k]:
                continue
            for c in np.unique(cat[items]):
                if c >= 0:
                    mine = items[cat[items] == c]
                    dens_c = _mix(self._density(u_b, u_l, mine), dens_k, mine.size)
                    self.tables[(k, int(c))] = self._correction(dens_c)

    def _density(self, u_b: np.ndarray, u_l: np.ndarray | None, items: np.ndarray
                 ) -> np.ndarray:
        """Kernel density of the pooled standardised parameters of ``items`` on the grid."""
        S = u_b.shape[0]
        n_draws = max(1, min(S, MAX_POINTS // max(items.size, 1)))
        rows = np.unique(np.linspace(0, S - 1, n_draws).round().astype(np.int64))
        xb = u_b[np.ix_(rows, items)].reshape(-1)
        # Silverman's rule with the number of items (draws of one item are not independent);
        # the points are pulled towards their mean so the kernel adds no variance.
        dim = 1 if u_l is None else 2
        h = (BANDWIDTH_FACTOR * (4.0 / (dim + 2.0)) ** (1.0 / (dim + 4.0))
             * items.size ** (-1.0 / (dim + 4.0)))
        shrink = 1.0 / np.sqrt(1.0 + h**2)
        db, dl = U_B[1] - U_B[0], U_L[1] - U_L[0]
        edges_b = np.concatenate([U_B - db / 2, [U_B[-1] + db / 2]])
        if u_l is None:
            xb = xb.mean() + shrink * (xb - xb.mean())
            hist, _ = np.histogram(xb, bins=edges_b)
            dens = gaussian_filter(hist.astype(np.float64), h * xb.std() / db,
                                   mode="constant")
            return _normalised(dens, db)
        xl = u_l[np.ix_(rows, items)].reshape(-1)
        xb = xb.mean() + shrink * (xb - xb.mean())
        xl = xl.mean() + shrink * (xl - xl.mean())
        edges_l = np.concatenate([U_L - dl / 2, [U_L[-1] + dl / 2]])
        # Points beyond the grid are dropped: no quadrature node reaches them.
        hist, _, _ = np.histogram2d(xb, xl, bins=(edges_b, edges_l))
        dens = gaussian_filter(hist, (h * xb.std() / db, h * xl.std() / dl), mode="constant")
        return _normalised(dens, db * dl)

    def _correction(self, dens: np.ndarray) -> np.ndarray:
        """``log((1 - FLOOR) f + FLOOR phi) - log(phi)`` on the grid."""
        log_phi = _log_normal(self.rasch)
        return np.log((1.0 - FLOOR) * dens + FLOOR * np.exp(log_phi)) - log_phi

    def correction(self, key: tuple[int, int] | None, zb: np.ndarray, zl: np.ndarray
                   ) -> np.ndarray:
        """Return group ``key``'s log-density correction at nodes ``(zb, zl)``: (N,).

        Coordinates beyond the lookup grid take its edge value (the normal part of the log
        prior keeps falling there). ``key`` None or unknown: zeros.
        """
        table = None if key is None else self.tables.get(key)
        if table is None:
            return np.zeros(np.shape(zb))
        fb = np.interp(zb, U_B, np.arange(U_B.size))
        if table.ndim == 1:
            return np.interp(fb, np.arange(U_B.size), table)
        fl = np.interp(zl, U_L, np.arange(U_L.size))
        ib = np.minimum(fb.astype(np.int64), U_B.size - 2)
        il = np.minimum(fl.astype(np.int64), U_L.size - 2)
        tb, tl = fb - ib, fl - il
        return ((1 - tb) * (1 - tl) * table[ib, il] + tb * (1 - tl) * table[ib + 1, il]
                + (1 - tb) * tl * table[ib, il + 1] + tb * tl * table[ib + 1, il + 1])


def _log_normal(rasch: bool) -> np.ndarray:
    """Return the standard-normal log density on the lookup grid (1-D when Rasch)."""
    log_phi = -0.5 * U_B**2 - 0.5 * np.log(2 * np.pi)
    if rasch:
        return log_phi
    return log_phi[:, None] - 0.5 * U_L[None, :] ** 2 - 0.5 * np.log(2 * np.pi)


def _mix(own: np.ndarray, parent: np.ndarray, n_items: int) -> np.ndarray:
    """Mix a group's density with its parent's by item count (``PRIOR_COUNT``)."""
    w = n_items / (n_items + PRIOR_COUNT)
    return w * own + (1.0 - w) * parent


def _normalised(dens: np.ndarray, cell: float) -> np.ndarray:
    """Normalise a binned density; the model's normal when no point fell on the grid."""
    total = dens.sum() * cell
    if not total > 0:  # every point beyond +-10 sd: nothing to say, keep the model's prior
        return np.exp(_log_normal(dens.ndim == 1))
    return dens / total
