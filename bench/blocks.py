"""Gradient cost of hier2pl's likelihood: pointwise against dense blocks (bayesirt.models.blocks).

For each data set: the potential energy's value-and-gradient time with one Bernoulli term per
response, with the dense per-benchmark blocks, and with no likelihood at all (the priors'
share); the two log densities must agree. From them, the fill at which a block costs what
the pointwise form costs for the same responses (``DENSE_MIN_FILL``'s evidence): a block
costs per matrix entry, the pointwise form per response.

Usage: ``python bench/blocks.py DATA_DIR [DATA_DIR ...] [--reps 30] [--out FILE.md]``
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--out", default="bench/results/blocks.md")
    ap.add_argument("--note", default="", help="a line for the record (e.g. what shared the CPU)")
    args = ap.parse_args()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import initialize_model

    import bayesirt.models.irt as irt_module
    from bayesirt import data as _data
    from bayesirt.models import build_inputs, get_model
    from bayesirt.models.blocks import SPARSE_KEY, n_blocks, response_blocks

    def timed(model, arrays, y):
        init, potential_fn, *_ = initialize_model(
            jax.random.key(0), model, model_args=(arrays,), model_kwargs={"y": y},
            dynamic_args=True)
        vg = jax.jit(jax.value_and_grad(lambda p, a, yy: potential_fn(a, y=yy)(p)))
        value, _ = jax.block_until_ready(vg(init.z, arrays, y))
        t0 = time.perf_counter()
        for _ in range(args.reps):
            out = vg(init.z, arrays, y)
        jax.block_until_ready(out)
        return float(value), (time.perf_counter() - t0) / args.reps * 1e3

    device = jax.devices()[0]
    machine = (f"{device.platform}, {os.cpu_count()} CPU cores, "
               f"{platform.processor() or platform.machine()}, python "
               f"{platform.python_version()}, jax {jax.__version__}")
    rows = []
    for path in args.data:
        irt = _data.load(path)
        inputs = build_inputs(irt)
        a = inputs.arrays
        blocks = response_blocks(a["obs_cell"], a["obs_item"], inputs.response,
                                 a["cell_benchmark"], a["item_benchmark"])
        entries = sum(blocks[k].size for k in blocks if k.endswith("_sign"))
        arrays = {k: jnp.asarray(v) for k, v in {**a, **blocks}.items()}
        y = jnp.asarray(inputs.response, dtype=jnp.float32)
        fn = get_model("hier2pl").fn
        v_point, t_point = timed(functools.partial(fn, **inputs.sizes), arrays, y)
        v_block, t_block = timed(functools.partial(fn, **inputs.sizes, likelihood="blocks"),
                                 arrays, y)
        # The priors' share: the same model with the likelihood switched off.
        saved = irt_module._likelihood
        irt_module._likelihood = lambda *a, **k: None
        try:
            _, t_none = timed(functools.partial(fn, **inputs.sizes), arrays, y)
        finally:
            irt_module._likelihood = saved
        per_obs = (t_point - t_none) / inputs.response.size
        per_entry = (t_block - t_none) / max(entries, 1)
        rows.append({
            "data": Path(path).name, "n_obs": inputs.response.size, "blocks": n_blocks(blocks),
            "entries": entries, "sparse": int(blocks[SPARSE_KEY].size),
            "pointwise_ms": t_point, "blocks_ms": t_block, "priors_ms": t_none,
            "rel_diff": abs(v_point - v_block) / abs(v_point),
            "break_even_fill": per_entry / per_obs,
        })
        print(rows[-1], flush=True)

    out = Path(args.out)
    lines = [
        "",
        f"<!-- run {time.strftime('%Y-%m-%d %H:%M')} -->",
        f"Machine: {machine}. {args.reps} repetitions of the potential's value and gradient "
        f"(float32, jit, model arguments dynamic as the sampler has them). {args.note}",
        "",
        "| data | responses | blocks (matrix entries) | pointwise ms | blocks ms | speed-up "
        "| priors only ms | break-even fill | potential rel. diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['n_obs']:,} | {r['blocks']} ({r['entries']:,}) | "
            f"{r['pointwise_ms']:.2f} | {r['blocks_ms']:.2f} | "
            f"{r['pointwise_ms'] / r['blocks_ms']:.1f}x | {r['priors_ms']:.2f} | "
            f"{r['break_even_fill']:.2f} | {r['rel_diff']:.1e} |")
    with out.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
