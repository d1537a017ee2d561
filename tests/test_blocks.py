"""Dense response blocks: every response held once, and the same log density as pointwise."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro.infer.util import initialize_model

from bayesirt.models import build_inputs, get_model
from bayesirt.models.blocks import SPARSE_KEY, n_blocks, response_blocks
from bayesirt.models.simulate import simulate


def test_response_blocks_hold_every_response_once():
    # Benchmark 0: 3 cells x 4 items, 11 of 12 answered (a block). Benchmark 1: 4 cells x 10
    # items, 5 answered (too empty). Benchmark 2: 2 x 2, full but one pair answered twice
    # (cannot be one matrix entry, so pointwise).
    cell_benchmark = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
    item_benchmark = np.array([0] * 4 + [1] * 10 + [2] * 2)
    pairs0 = [(c, i) for c in range(3) for i in range(4)][:-1]
    pairs1 = [(3, 4), (4, 5), (5, 6), (6, 7), (3, 8)]
    pairs2 = [(7, 14), (7, 15), (8, 14), (8, 15), (8, 15)]
    pairs = pairs0 + pairs1 + pairs2
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pairs))
    obs_cell = np.array([pairs[k][0] for k in order])
    obs_item = np.array([pairs[k][1] for k in order])
    response = rng.integers(0, 2, size=len(pairs))

    out = response_blocks(obs_cell, obs_item, response, cell_benchmark, item_benchmark)

    assert n_blocks(out) == 1
    np.testing.assert_array_equal(out["block0_cell"], [0, 1, 2])
    np.testing.assert_array_equal(out["block0_item"], [0, 1, 2, 3])
    sign = out["block0_sign"]
    in_block = item_benchmark[obs_item] == 0
    for c, i, y in zip(obs_cell[in_block], obs_item[in_block], response[in_block], strict=True):
        assert sign[c, i] == 2 * y - 1
    assert np.count_nonzero(sign) == len(pairs0)
    assert sign[2, 3] == 0  # the unanswered pair
    np.testing.assert_array_equal(out[SPARSE_KEY], np.flatnonzero(~in_block))


def _potential_and_grad(inputs, arrays, likelihood, at=None, **options):
    """Potential energy and its gradient at ``at`` (default: a random initial point)."""
    model = functools.partial(get_model("hier2pl").fn, **inputs.sizes, likelihood=likelihood,
                              **options)
    y = jnp.asarray(inputs.response, dtype=jnp.float32)
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
    init, potential_fn, *_ = initialize_model(
        jax.random.key(3), model, model_args=(arrays,), model_kwargs={"y": y},
        dynamic_args=True)
    z = init.z if at is None else at
    value, grad = jax.value_and_grad(lambda p: potential_fn(arrays, y=y)(p))(z)
    return z, float(value), grad


@pytest.mark.usefixtures("numpyro_lenient")
@pytest.mark.parametrize("options", [{}, {"guess": True}, {"contamination": True}],
                         ids=["plain", "guess", "contamination"])
def test_blocks_give_the_pointwise_log_density_and_gradient(options):
    data, _ = simulate(np.random.default_rng(5), "hier2pl", n_models=9,
                       items_per_benchmark=(14, 11, 8), categories_per_benchmark=(2, 1, 1))
    inputs = build_inputs(data)
    a = inputs.arrays
    blocks = response_blocks(a["obs_cell"], a["obs_item"], inputs.response,
                             a["cell_benchmark"], a["item_benchmark"])
    assert n_blocks(blocks) == 3 and blocks[SPARSE_KEY].size == 0
    # Mixed: the second benchmark's responses go back to the pointwise site.
    mixed = {k: v for k, v in blocks.items() if not k.startswith("block1_")}
    for k in ("cell", "item", "sign"):
        mixed[f"block1_{k}"] = mixed.pop(f"block2_{k}")
    mixed[SPARSE_KEY] = np.flatnonzero(
        a["item_benchmark"][a["obs_item"]] == 1).astype(np.int32)

    z, ref_value, ref_grad = _potential_and_grad(inputs, a, "pointwise", **options)
    for layout in (blocks, mixed):
        _, value, grad = _potential_and_grad(inputs, {**a, **layout}, "blocks", at=z,
                                             **options)
        np.testing.assert_allclose(value, ref_value, rtol=1e-5)
        for name in ref_grad:
            np.testing.assert_allclose(grad[name], ref_grad[name], rtol=2e-4, atol=2e-4,
                                       err_msg=name)


def test_blocks_refuse_to_sample_from_the_prior():
    data, _ = simulate(np.random.default_rng(5), "hier2pl", n_models=4,
                       items_per_benchmark=(5,), categories_per_benchmark=(1,))
    inputs = build_inputs(data)
    model = functools.partial(get_model("hier2pl").fn, **inputs.sizes, likelihood="blocks")
    arrays = {k: jnp.asarray(v) for k, v in inputs.arrays.items()}
    with pytest.raises(ValueError, match="prior"):
        numpyro.handlers.seed(model, jax.random.key(0))(arrays)
