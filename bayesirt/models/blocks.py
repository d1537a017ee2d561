r"""Dense (cell x item) blocks of the responses: the same likelihood without gathers.

Leaderboards are dense within a benchmark: the models that ran it answered (almost) every
one of its items. The pointwise likelihood gathers an ability and an item's parameters for
each of ``n_obs`` responses and, in the gradient, scatter-adds ``n_obs`` terms back into
them; on a CPU the scatter-add is a serial loop (and on GPUs it was the slow path of
numpyro #2225). Written as one matrix per benchmark,

.. math::

    \eta_{rc} = a_{j_c}\,(\theta_{r} - b_{j_c}),\qquad
    \log p(y) = \sum_{r,c} |s_{rc}|\,\log\operatorname{logit}^{-1}(s_{rc}\,\eta_{rc}),

with :math:`s_{rc} = 2y - 1` on an answered (cell, item) pair and 0 on an unanswered one,
the gradient is two reductions over the matrix's axes. It is the same log density (the
sum's order differs, float32 rounding only; ``tests/test_blocks.py`` checks the potential
and its gradient against the pointwise form). Measured (``bench/results/blocks.md``, the
2-core CPU): the full model's value and gradient on the dev set (496,567 responses) went
from 8.4 to 2.4 ms; on the small set (8,844) both take 0.25 ms, the priors being most of it.

A benchmark whose block would be mostly empty is left to the pointwise form
(``DENSE_MIN_FILL``: the measured break-even fill is 0.23 on the dev set, the threshold keeps
a margin). Off by default in ``FitConfig.dense_blocks``: a blocks fit's memory grew ~10 MB
per iteration on the dev set (``bench/results/blocks.md``), not yet explained.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: Smallest fraction of a benchmark's (cell, item) matrix that must be answered for the
#: benchmark to be written as a dense block. On the dev set a matrix entry costs 0.23x what
#: one pointwise response costs (``bench/results/blocks.md``: break-even at fill 0.23); on
#: small data the fixed costs make them equal. 0.5 keeps a margin for other machines.
DENSE_MIN_FILL = 0.5

#: Prefix of the block arrays in ``ModelInputs.arrays``: ``block{i}_cell`` (n_rows,),
#: ``block{i}_item`` (n_cols,), ``block{i}_sign`` (n_rows, n_cols); and the rows the blocks
#: do not hold, ``SPARSE_KEY`` (n_sparse,).
BLOCK_PREFIX = "block"
SPARSE_KEY = "sparse_obs"


def response_blocks(
    obs_cell: np.ndarray,
    obs_item: np.ndarray,
    response: np.ndarray,
    cell_benchmark: np.ndarray,
    item_benchmark: np.ndarray,
    min_fill: float | None = None,
) -> dict[str, np.ndarray]:
    """Split the responses into dense per-benchmark blocks and a pointwise remainder.

    Parameters
    ----------
    obs_cell, obs_item : ndarray of int, shape (n_obs,)
        Each response's (model, benchmark) cell and training item.
    response : ndarray of {0, 1}, shape (n_obs,)
    cell_benchmark : ndarray of int, shape (n_cells,)
    item_benchmark : ndarray of int, shape (n_items,)
    min_fill : float or None
        None reads ``DENSE_MIN_FILL`` at call time (so a bench can patch it).
        A benchmark becomes a block when at least this fraction of its (cell, item) pairs
        was answered.

    Returns
    -------
    dict of str to ndarray
        For the i-th block (benchmarks in index order): ``block{i}_cell`` (n_rows,) int32
        cell indices, ``block{i}_item`` (n_cols,) int32 item indices and ``block{i}_sign``
        (n_rows, n_cols) float32 in {-1, 0, +1} (0: not answered); and ``sparse_obs``
        (n_sparse,) int32, the responses in no block, in their original order.
    """
    obs_cell = np.asarray(obs_cell)
    obs_item = np.asarray(obs_item)
    response = np.asarray(response)
    obs_benchmark = np.asarray(item_benchmark)[obs_item]
    if min_fill is None:
        min_fill = DENSE_MIN_FILL
    in_block = np.zeros(obs_cell.size, dtype=bool)
    out: dict[str, np.ndarray] = {}
    count = 0
    for k in np.unique(obs_benchmark):
        rows = np.flatnonzero(obs_benchmark == k)
        cells = np.flatnonzero(np.asarray(cell_benchmark) == k)
        items = np.flatnonzero(np.asarray(item_benchmark) == k)
        if rows.size < min_fill * cells.size * items.size:
            continue
        r = np.searchsorted(cells, obs_cell[rows])
        c = np.searchsorted(items, obs_item[rows])
        flat = r * items.size + c
        # A (cell, item) pair answered twice cannot sit in one matrix entry: leave the
        # benchmark pointwise, where each response counts once as it always did.
        if np.unique(flat).size < flat.size:
            continue
        sign = np.zeros(cells.size * items.size, dtype=np.float32)
        sign[flat] = 2.0 * response[rows] - 1.0
        out[f"{BLOCK_PREFIX}{count}_cell"] = cells.astype(np.int32)
        out[f"{BLOCK_PREFIX}{count}_item"] = items.astype(np.int32)
        out[f"{BLOCK_PREFIX}{count}_sign"] = sign.reshape(cells.size, items.size)
        in_block[rows] = True
        count += 1
    out[SPARSE_KEY] = np.flatnonzero(~in_block).astype(np.int32)
    return out


def n_blocks(data) -> int:
    """Return the number of dense blocks in a model's ``data`` dict (0 when it has none)."""
    return sum(1 for key in data if key.startswith(BLOCK_PREFIX) and key.endswith("_sign"))


def floor_logits(eta, floor):
    """Logits of ``p = floor + (1 - floor) sigmoid(eta)``, without cancellation.

    Parameters
    ----------
    eta : Array
        Linear predictor.
    floor : Array or None, broadcastable to ``eta``
        Lower asymptote; None returns ``eta``.
    """
    if floor is None:
        return eta
    log_p = jnp.logaddexp(jnp.log(floor), jnp.log1p(-floor) + jax.nn.log_sigmoid(eta))
    log_q = jnp.log1p(-floor) + jax.nn.log_sigmoid(-eta)
    return log_p - log_q


def block_loglik(data, ability, difficulty, log_discrimination, floor_benchmark=None,
                 floor_cell=None):
    r"""Log-likelihood of every response held in the dense blocks.

    Parameters
    ----------
    data : dict of str to Array
        Holds the arrays of :func:`response_blocks`.
    ability : Array, shape (n_cells,)
        Standardised ability of each (model, benchmark) cell.
    difficulty, log_discrimination : Array, shape (n_items,)
    floor_benchmark : Array or None, shape (n_benchmarks,)
        Per-benchmark guessing floor (``guess``), or None.
    floor_cell : Array or None, shape (n_cells,)
        Per-cell leak probability (``contamination``), or None.

    Returns
    -------
    Array, shape ()
        :math:`\sum |s| \log\sigma(s\,\mathrm{logit})` over all blocks.
    """
    total = jnp.zeros((), dtype=ability.dtype)
    for i in range(n_blocks(data)):
        cells = data[f"{BLOCK_PREFIX}{i}_cell"]
        items = data[f"{BLOCK_PREFIX}{i}_item"]
        sign = data[f"{BLOCK_PREFIX}{i}_sign"]
        eta = jnp.exp(log_discrimination[items])[None, :] * (
            ability[cells][:, None] - difficulty[items][None, :])
        floor = None
        if floor_benchmark is not None:
            # Every item of a block is of one benchmark: its floor is the first item's.
            floor = floor_benchmark[data["item_benchmark"][items[0]]]
        if floor_cell is not None:
            leak = floor_cell[cells][:, None]
            # Two independent ways to succeed without the ability: 1 - P(neither).
            floor = leak if floor is None else 1.0 - (1.0 - floor) * (1.0 - leak)
        logits = floor_logits(eta, floor)
        total = total + jnp.sum(jnp.abs(sign) * jax.nn.log_sigmoid(sign * logits))
    return total
