"""Where the CPU time of a full real-multibench fit goes: gradient cost, chains, NUTS overhead.

Measures, on the data ``bench/fit_dev.py`` fits (default settings, ``jit_model_args`` as the
fit chooses it), at a realistic point (a chain's start: a jittered draw of the ADVI fit the
sampler starts from):

1. one ``value_and_grad`` of the potential energy (one chain), many repetitions;
2. four chains' gradients at once, as the 4-chain fit evaluates them: ``pmap`` over 4 host
   devices (``fit_dev.py``'s setting: one host device per chain on the 2 cores) and ``vmap``
   on one device (what ``bayesirt fit`` does on 2 cores: 2 host devices < 4 chains);
3. a very short NUTS run (4 chains in parallel, ADVI start, ``--nuts-warmup`` iterations,
   warm-up statistics collected): wall time per lockstep leapfrog step against (2), which
   is the sampler's own overhead, and the steps per iteration early in warm-up.

Usage::

    python bench/cpu_timing.py ../shared/data/real-multibench [--reps 50] [--nuts-warmup 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")


def timed(fn, *args, reps: int):
    """Compile-and-first-call seconds, then min and median of ``reps`` calls (ms)."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"first_call_s": round(first, 2), "min_ms": round(1e3 * times[0], 3),
            "median_ms": round(1e3 * times[len(times) // 2], 3), "reps": reps}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--advi-steps", type=int, default=500)
    ap.add_argument("--nuts-warmup", type=int, default=30)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import functools

    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.infer import MCMC, NUTS, init_to_median
    from numpyro.infer.util import potential_energy

    from bayesirt import data as _data
    from bayesirt.inference.warmstart import advi_init
    from bayesirt.models import build_inputs, get_model

    irt = _data.load(args.data)
    inputs = build_inputs(irt)
    model = functools.partial(get_model("hier2pl").fn, **inputs.sizes)
    arrays = {k: jnp.asarray(v) for k, v in inputs.arrays.items()}
    y = jnp.asarray(inputs.response, jnp.float32)
    rec = {"n_obs": int(inputs.sizes["n_obs"]), "devices": len(jax.devices()),
           "cpu_count": os.cpu_count(), "jax": jax.__version__}

    t0 = time.perf_counter()
    init, inverse_mass = advi_init(jax.random.key(0), model, arrays, y, 4, args.advi_steps)
    rec["advi_s"] = round(time.perf_counter() - t0, 1)
    rec["n_params"] = int(sum(np.size(v[0]) for v in init.values()))
    point = {k: v[0] for k, v in init.items()}

    def vg(p, d, yy):
        return jax.value_and_grad(lambda q: potential_energy(model, (d,), {"y": yy}, q))(p)

    rec["potential_at_point"] = float(jax.jit(vg)(point, arrays, y)[0])
    rec["one_chain"] = timed(jax.jit(vg), point, arrays, y, reps=args.reps)
    print(json.dumps(rec), flush=True)
    rec["vmap_4_chains"] = timed(jax.jit(jax.vmap(vg, in_axes=(0, None, None))), init, arrays,
                                 y, reps=max(10, args.reps // 4))
    print(json.dumps(rec["vmap_4_chains"]), flush=True)
    if len(jax.devices()) >= 4:
        rec["pmap_4_chains"] = timed(jax.pmap(vg, in_axes=(0, None, None)), init, arrays, y,
                                     reps=max(10, args.reps // 4))
        print(json.dumps(rec["pmap_4_chains"]), flush=True)

    if args.nuts_warmup:
        kernel = NUTS(model, init_strategy=init_to_median(num_samples=15),
                      inverse_mass_matrix=inverse_mass)
        parallel = len(jax.devices()) >= 4
        runs = {}
        for label, warm in (("compile", 1), ("short", args.nuts_warmup)):
            mcmc = MCMC(kernel, num_warmup=warm, num_samples=1, num_chains=4,
                        chain_method="parallel" if parallel else "vectorized",
                        progress_bar=False, jit_model_args=True)
            t0 = time.perf_counter()
            mcmc.warmup(jax.random.key(1), arrays, y=y, init_params=init, collect_warmup=True,
                        extra_fields=("num_steps", "adapt_state.step_size"))
            # Block: dispatch is asynchronous, the clock must stop when the chains have.
            fields = jax.block_until_ready(mcmc.get_extra_fields(group_by_chain=True))
            runs[label] = (time.perf_counter() - t0, np.asarray(fields["num_steps"]))
        wall, steps = runs["short"][0] - runs["compile"][0], runs["short"][1]
        lockstep = int(steps.max(axis=0).sum())  # parallel chains wait for the slowest
        rec["nuts_short"] = {
            "chain_method": "parallel" if parallel else "vectorized",
            "warmup_iterations": args.nuts_warmup, "compile_run_s": round(runs["compile"][0], 1),
            "wall_s_minus_compile": round(wall, 1),
            "steps_per_iteration_mean": round(float(steps.mean()), 1),
            "steps_per_iteration_by_chain": steps.mean(axis=1).round(1).tolist(),
            "lockstep_steps": lockstep,
            "ms_per_lockstep_step": round(1e3 * wall / max(lockstep, 1), 3),
        }
        print(json.dumps(rec["nuts_short"]), flush=True)
    print(json.dumps(rec, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rec, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
