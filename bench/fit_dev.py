"""Scale benchmark: fit hier2pl to a full data set and record speed and convergence.

Records wall time (with compilation), leapfrog steps per draw, gradient evaluations per
second, the time of one gradient, and min-ESS per second, with the machine named; saves the
posterior for the other benchmarks (diagnose, bundle).

Usage::

    python bench/fit_dev.py /path/to/real-multibench --out /tmp/bayesirt-bench/full.nc \
        --chains 4 --warmup 1000 --draws 1000 [--device gpu] [--grad-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def per_variable(posterior):
    """Max R-hat and min bulk-ESS of each posterior variable (constant columns skipped)."""
    import numpy as np
    from arviz_stats.base import array_stats

    out = {}
    for name, value in posterior.items():
        flat = np.asarray(value, dtype=np.float64)
        flat = flat.reshape(flat.shape[0], flat.shape[1], -1)
        flat = flat[..., np.ptp(flat, axis=(0, 1)) > 0]
        if flat.shape[-1] == 0:
            continue
        flat = np.moveaxis(flat, -1, 0)
        rhat = array_stats.rhat(flat, chain_axis=-2, draw_axis=-1, method="rank")
        ess = array_stats.ess(flat, chain_axis=-2, draw_axis=-1, method="bulk")
        out[name] = {"rhat_max": round(float(np.nanmax(rhat)), 4),
                     "ess_bulk_min": round(float(np.nanmin(ess)), 1)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data")
    ap.add_argument("--out", default="/tmp/bayesirt-bench/full.nc")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--parameterisation", default="auto",
                    choices=("auto", "centred", "noncentred"))
    ap.add_argument("--max-tree-depth", type=int, default=10)
    ap.add_argument("--grad-only", action="store_true", help="only time the gradient")
    ap.add_argument("--variant", default="default",
                    help="an entry of bench/robustness.py's VARIANTS, patched into this process "
                         "(its config.* entries are not applied: the flags above are the config)")
    ap.add_argument("--results", default="bench/results/fit_dev.md")
    args = ap.parse_args()

    if args.device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={args.chains}")
    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer.util import initialize_model

    from bayesirt import data as _data
    from bayesirt import posteriors
    from bayesirt.inference import FitConfig, convergence_headline, fit, format_headline
    from bayesirt.models import build_inputs, get_model
    from bayesirt.models.blocks import n_blocks, response_blocks

    variant_config: dict = {}
    if args.variant != "default":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from robustness import VARIANTS, apply_variant

        apply_variant(args.variant)
        variant_config = {k.removeprefix("config."): v for k, v in VARIANTS[args.variant].items()
                          if k.startswith("config.")}

    t0 = time.perf_counter()
    irt = _data.load(args.data)
    load_s = time.perf_counter() - t0
    device = jax.devices()[0]
    machine = (
        f"{device.platform}:{device.device_kind}, {os.cpu_count()} CPU cores, "
        f"{platform.processor() or platform.machine()}, python {platform.python_version()}, "
        f"jax {jax.__version__}"
    )
    print(f"data loaded in {load_s:.1f} s: {irt.n_obs:,} responses; device {machine}", flush=True)

    # Time one gradient of the potential energy on this device (jit_model_args as fit does).
    inputs = build_inputs(irt, parameterisation=args.parameterisation)
    # The dense response blocks too, as fit builds them (bayesirt.models.blocks).
    a = inputs.arrays
    blocks = (response_blocks(a["obs_cell"], a["obs_item"], inputs.response,
                              a["cell_benchmark"], a["item_benchmark"])
              if variant_config.get("dense_blocks", FitConfig.dense_blocks) else {})
    model = functools.partial(get_model("hier2pl").fn, **inputs.sizes,
                              likelihood="blocks" if n_blocks(blocks) else "pointwise")
    arrays = {k: jnp.asarray(v) for k, v in {**a, **blocks}.items()}
    y = jnp.asarray(inputs.response, dtype=jnp.float32)
    init, potential_fn, *_ = initialize_model(
        jax.random.key(0), model, model_args=(arrays,), model_kwargs={"y": y},
        dynamic_args=True,
    )
    grad = jax.jit(jax.grad(lambda p, a, yy: potential_fn(a, y=yy)(p)))
    params = init.z
    t0 = time.perf_counter()
    jax.block_until_ready(grad(params, arrays, y))
    compile_s = time.perf_counter() - t0
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        out = grad(params, arrays, y)
    jax.block_until_ready(out)
    grad_ms = (time.perf_counter() - t0) / reps * 1e3
    print(f"gradient: {grad_ms:.2f} ms (compile {compile_s:.1f} s)", flush=True)
    row = {
        "variant": args.variant,
        "machine": machine,
        "n_obs": irt.n_obs,
        "n_params": int(sum(np.size(v) for v in params.values())),
        "gradient_ms": round(grad_ms, 3),
    }
    if args.grad_only:
        print(json.dumps(row))
        return 0

    cfg = FitConfig(chains=args.chains, warmup=args.warmup, draws=args.draws, seed=args.seed,
                    device=args.device, progress=True, parameterisation=args.parameterisation,
                    max_tree_depth=args.max_tree_depth, **variant_config)
    t0 = time.perf_counter()
    res = fit(jax.random.key(args.seed), irt, cfg)
    wall = time.perf_counter() - t0
    head = convergence_headline(res.posterior, res.sample_stats, res.max_tree_depth,
                                 res.dims, res.coords, constants=res.constant_data)
    text, passed = format_headline(head, wall_seconds=res.provenance["sampling_wall_seconds"])
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = posteriors.save(res, args.out)
    save_s = time.perf_counter() - t0
    steps = res.sample_stats["n_steps"]
    row.update(
        chains=args.chains, warmup=args.warmup, draws=args.draws,
        parameterisation=args.parameterisation, max_tree_depth=args.max_tree_depth,
        step_size_mean=round(float(np.mean(res.sample_stats["step_size"][:, -1])), 4),
        dense_blocks=res.provenance["dense_blocks"],
        wall_s_with_compile=round(wall, 1),
        sampling_s=res.provenance["sampling_wall_seconds"],
        steps_per_draw=round(float(steps.mean()), 1),
        grad_evals_per_s_sampling_phase=round(
            float(steps.sum()) * (args.warmup + args.draws) / args.draws / wall, 1),
        rhat_max=round(head["rhat_max"], 4), ess_bulk_min=round(head["ess_bulk_min"], 1),
        ess_tail_min=round(head["ess_tail_min"], 1), divergences=head["divergences"],
        tree_depth_hits=head["tree_depth_hits"],
        min_ess_per_s=round(min(head["ess_bulk_min"], head["ess_tail_min"]) / wall, 3),
        converged=passed, posterior_mb=round(path.stat().st_size / 1e6, 1),
        save_s=round(save_s, 1),
    )
    row["per_variable"] = per_variable(res.posterior)
    print(json.dumps(row, indent=1))
    with open(args.results, "a") as fh:
        fh.write(f"\n<!-- run {time.strftime('%Y-%m-%d %H:%M')} -->\n```json\n")
        fh.write(json.dumps(row, indent=1) + "\n```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
