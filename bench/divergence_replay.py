"""Replay the divergent transitions of a robustness-suite fit: where does the energy blow up?

A divergent draw is the *accepted* point of an iteration whose trajectory diverged, usually
a typical point some way before the blow-up; so the divergent draws of a few scattered
divergences say little (``bayesirt.inference.blame.locate_divergences`` calls them chance).
This script refits one member with NumPyro's NUTS at the default settings, keeping each
iteration's PRNG key, then rebuilds each divergent iteration's start (the previous draw,
unconstrained), its momentum (the kernel's own key split, so the same momentum) and the
adapted step size and diagonal mass matrix, and integrates the leapfrog both ways until
the energy error passes NUTS's 1,000. At that step it names the coordinates with the
largest gradient and the largest move, in units of the mass matrix. (The replay does not
stop at U-turns, so a blow-up it finds beyond the iteration's recorded steps is not the
one NUTS met.)

The fit is NumPyro's own run, not ``bayesirt.inference.fit`` (which collects no keys): same
model, settings and seed, not the same draws.

Usage::

    python bench/divergence_replay.py real-full-cat10-500 --seed 0 [--variant no-anchor] \
        [--out bench/results/divergence_replay.jsonl]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

#: NumPyro's divergence threshold on the energy error.
MAX_DELTA_ENERGY = 1000.0


def coordinate_names(sites, values, inputs):
    """Readable name of every unconstrained coordinate, in the mass matrix's order."""
    from bayesirt.inference.headline import param_name
    from bayesirt.models import SITE_DIMS

    names = []
    for site in sites:
        shape = np.shape(values[site])
        for i in range(int(np.prod(shape)) if shape else 1):
            names.append(param_name(site, shape, i, SITE_DIMS, inputs.coords) if shape
                         else site)
    return names


def replay(member: str, seed: int, variant: str) -> list[dict]:
    """Fit ``member`` and replay each divergent iteration; one record per blow-up found."""
    import jax
    import jax.numpy as jnp
    import robustness
    from jax.flatten_util import ravel_pytree
    from numpyro.infer import MCMC, NUTS, init_to_median
    from numpyro.infer.util import initialize_model, unconstrain_fn

    from bayesirt.inference import FitConfig
    from bayesirt.models import build_inputs, get_model

    robustness.apply_variant(variant)
    overrides = {k.split(".", 1)[1]: v for k, v in robustness.VARIANTS[variant].items()
                 if k.startswith("config.")}
    config = FitConfig(seed=seed, progress=False, **overrides)
    inputs = build_inputs(robustness.MEMBERS[member]())
    model = functools.partial(get_model(config.model).fn, **inputs.sizes)
    arrays = {k: jnp.asarray(v) for k, v in inputs.arrays.items()}
    y = jnp.asarray(inputs.response, dtype=jnp.float32)
    # A raw (uint32) key: NumPyro then keeps each iteration's key as an extra field.
    key = jax.random.key_data(jax.random.split(jax.random.key(seed), 3)[0])
    mcmc = MCMC(NUTS(model, target_accept_prob=config.target_accept,
                     max_tree_depth=config.max_tree_depth,
                     init_strategy=init_to_median(num_samples=15)),
                num_warmup=config.warmup, num_samples=config.draws, num_chains=config.chains,
                chain_method="parallel", progress_bar=False)
    started = time.perf_counter()
    mcmc.run(key, arrays, y=y,
             extra_fields=("diverging", "num_steps", "rng_key", "adapt_state.step_size"))
    extra = jax.device_get(mcmc.get_extra_fields(group_by_chain=True))
    diverging = np.asarray(extra["diverging"])
    print(f"{member} seed {seed} {variant}: {time.perf_counter() - started:.0f} s, "
          f"divergences per chain {diverging.sum(axis=1).tolist()}", flush=True)
    adapt = mcmc.last_state.adapt_state
    (sites, inverse_mass), = adapt.inverse_mass_matrix.items()
    mass_sqrt = adapt.mass_matrix_sqrt[sites]
    samples = mcmc.get_samples(group_by_chain=True)
    potential = initialize_model(jax.random.key(0), model, model_args=(arrays,),
                                 model_kwargs={"y": y}).potential_fn

    def start(chain, draw):
        values = unconstrain_fn(model, (arrays,), {"y": y},
                                {k: samples[k][chain, draw] for k in sites})
        return ravel_pytree(OrderedDict((k, values[k]) for k in sites))

    _, unravel = start(0, 0)
    names = coordinate_names(sites, unravel(start(0, 0)[0]), inputs)
    energy = jax.jit(lambda q: potential(dict(unravel(q))))
    grad = jax.jit(jax.grad(lambda q: potential(dict(unravel(q)))))
    records = []
    for chain, draw in zip(*np.nonzero(diverging), strict=True):
        if draw == 0:
            continue
        q0, _ = start(chain, draw - 1)
        # The kernel splits its key into (next, momentum, transition); the momentum
        # generator splits the momentum key once per mass-matrix block (one here).
        _, momentum_key, _ = jax.random.split(extra["rng_key"][chain, draw - 1], 3)
        inv_m = jnp.asarray(inverse_mass[chain])
        r0 = mass_sqrt[chain] * jax.random.normal(jax.random.split(momentum_key, 1)[0],
                                                  (inv_m.shape[0],))
        step = float(extra["adapt_state.step_size"][chain, draw])
        h0 = float(energy(q0)) + 0.5 * float(jnp.sum(inv_m * r0**2))
        for direction in (1.0, -1.0):
            q, r, g = q0, r0, grad(q0)
            for n in range(1, 2**config.max_tree_depth):
                r = r - 0.5 * direction * step * g
                q_before = q
                q = q + direction * step * inv_m * r
                g = grad(q)
                r = r - 0.5 * direction * step * g
                dh = float(energy(q)) + 0.5 * float(jnp.sum(inv_m * r**2)) - h0
                if np.isfinite(dh) and dh <= MAX_DELTA_ENERGY:
                    continue
                scale = np.sqrt(np.asarray(inv_m))
                force = np.abs(np.asarray(g)) * scale
                moved = np.abs(np.asarray(q - q_before)) / scale
                rec = {
                    "member": member, "seed": seed, "variant": variant,
                    "chain": int(chain), "draw": int(draw), "direction": direction,
                    "blow_up_step": n, "recorded_steps": int(extra["num_steps"][chain, draw]),
                    "energy_error": dh, "step_size": step,
                    "top_gradient": [
                        {"coordinate": names[j], "scaled_gradient": float(force[j]),
                         "start": float(q0[j]), "at_blow_up": float(q[j])}
                        for j in np.argsort(-force)[:5]],
                    "top_move": [{"coordinate": names[j], "scaled_move": float(moved[j])}
                                 for j in np.argsort(-moved)[:5]],
                }
                records.append(rec)
                top = rec["top_gradient"][0]
                print(f"  chain {chain} draw {draw} ({'forward' if direction > 0 else 'back'}"
                      f", step {n} of {rec['recorded_steps']}): {top['coordinate']} "
                      f"{top['start']:.3g} -> {top['at_blow_up']:.3g}, then "
                      f"{rec['top_gradient'][1]['coordinate']}", flush=True)
                break
    return records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("member")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", default="default")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bayesirt-replay/replay.jsonl"))
    args = ap.parse_args()
    records = replay(args.member, args.seed, args.variant)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        for rec in records:
            fh.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
