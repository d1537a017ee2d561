"""Scale benchmark: hier2pl on data simulated from its prior, up to Open-LLM-Leaderboard size.

For each size (models x items over benchmarks at a density) it simulates responses from the
hier2pl prior (``bayesirt.models.simulate``, ``from_prior=True``), builds the model inputs and
records, for the log density's ``value_and_grad`` as NUTS calls it (model data passed as
traced arguments, ``jit_model_args=True``; sizes static):

* compile time (``jit(...).lower(...).compile()``),
* memory: XLA's own accounting of the compiled program (arguments + outputs + temporaries,
  ``compiled.memory_analysis()``), per observation,
* gradient time (median of repetitions), and per 10^6 observations,
* optionally (``--nuts-max-obs``) leapfrog steps per draw of a short one-chain NUTS run.

``--shards N,M`` repeats the gradient measurements with the observation axis sharded over
N, M devices (``bayesirt.inference.sharding``). Then it fits ``time = a + b * n_obs`` and
``bytes = c * n_obs`` (c from the largest measured size) and projects the rest.

Usage::

    python bench/scale.py [--device cpu|gpu] [--sizes 200x1500,500x3000] [--benchmarks 6]
        [--density 0.7] [--shards 1,2] [--nuts-max-obs 300000] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

# The Open-LLM-Leaderboard-like target shape (models x items, 6 benchmarks, 70% density).
TARGET = (5000, 30000)
DEFAULT_SIZES = "200x1500,500x3000,1000x6000,2000x12000"


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"200x1500,500x3000"`` -> [(200, 1500), (500, 3000)]."""
    out = []
    for part in text.split(","):
        models, items = part.lower().split("x")
        out.append((int(models), int(items)))
    return out


def simulate_size(n_models: int, n_items: int, n_benchmarks: int, density: float, seed: int):
    """Responses drawn from the hier2pl prior at one size (8 categories per benchmark)."""
    import numpy as np

    from bayesirt.models.simulate import simulate

    per = [n_items // n_benchmarks] * n_benchmarks
    per[-1] += n_items - sum(per)
    # Prior draws give some extreme items (exp overflows to P = 0 or 1: harmless).
    with np.errstate(over="ignore"):
        data, _ = simulate(np.random.default_rng(seed), "hier2pl", n_models=n_models,
                           items_per_benchmark=tuple(per),
                           categories_per_benchmark=(8,) * n_benchmarks, coverage=density,
                           from_prior=True)
    return data


def start_point(model, data, y):
    """NumPyro's median initialisation in unconstrained space, traced under jit."""
    import jax
    from numpyro import handlers
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer import init_to_median

    seeded = handlers.substitute(handlers.seed(model, jax.random.key(0)),
                                 substitute_fn=init_to_median(num_samples=15))

    def unconstrained(d, yy):
        tr = handlers.trace(seeded).get_trace(d, y=yy)
        return {name: biject_to(site["fn"].support).inv(site["value"])
                for name, site in tr.items()
                if site["type"] == "sample" and not site["is_observed"]}

    return jax.jit(unconstrained)(data, y)


def time_gradient(inputs, n_shards: int, devices, min_seconds: float, max_reps: int):
    """Compile and time ``value_and_grad`` of the potential; return a measurement dict."""
    import functools

    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import potential_energy

    from bayesirt.inference import sharding
    from bayesirt.models import get_model

    fn = get_model("hier2pl").fn
    if n_shards == 1:
        with jax.default_device(devices[0]):
            data = {k: jnp.asarray(v) for k, v in inputs.arrays.items()}
            y = jnp.asarray(inputs.response, jnp.float32)
        model = functools.partial(fn, **inputs.sizes)
    else:
        placed = sharding.shard_inputs(inputs.arrays, inputs.response, inputs.sizes,
                                       devices[:n_shards])
        data, y = placed.arrays, placed.y
        model = sharding.masked_model(functools.partial(fn, **placed.sizes))
    point = start_point(model, data, y)
    vg = jax.jit(jax.value_and_grad(lambda p, d, yy: potential_energy(model, (d,), {"y": yy}, p)))
    t0 = time.perf_counter()
    compiled = vg.lower(point, data, y).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    mem_bytes = None
    if mem is not None:
        mem_bytes = int(mem.argument_size_in_bytes + mem.output_size_in_bytes
                        + mem.temp_size_in_bytes)
    jax.block_until_ready(compiled(point, data, y))  # warm
    times = []
    started = time.perf_counter()
    while len(times) < max_reps and (len(times) < 3 or time.perf_counter() - started
                                     < min_seconds):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(point, data, y))
        times.append(time.perf_counter() - t0)
    times.sort()
    n_obs = int(inputs.sizes["n_obs"])
    grad_ms = 1e3 * times[len(times) // 2]
    return {
        "shards": n_shards,
        "compile_s": round(compile_s, 2),
        "grad_ms_median": round(grad_ms, 3),
        "grad_ms_min": round(1e3 * times[0], 3),
        "grad_reps": len(times),
        "grad_ms_per_1e6_obs": round(grad_ms / (n_obs / 1e6), 3),
        # XLA's accounting is per device: with N shards, each holds 1/N of the rows.
        "program_bytes_per_device": mem_bytes,
        "bytes_per_obs": round(mem_bytes * n_shards / n_obs, 1) if mem_bytes else None,
    }


def short_nuts(data, warmup: int, draws: int, seed: int) -> dict:
    """One chain, ADVI start, ``warmup`` + ``draws``: leapfrog steps per kept draw."""
    import jax
    import numpy as np

    from bayesirt.inference import FitConfig, fit

    cfg = FitConfig(chains=1, warmup=warmup, draws=draws, init="advi", init_steps=500,
                    jit_model_args=True, progress=False, device="auto")
    t0 = time.perf_counter()
    res = fit(jax.random.key(seed), data, cfg)
    steps = np.asarray(res.sample_stats["n_steps"])
    return {
        "nuts_warmup": warmup, "nuts_draws": draws,
        "steps_per_draw": round(float(steps.mean()), 1),
        "steps_per_draw_median": float(np.median(steps)),
        "step_size": round(float(np.mean(res.sample_stats["step_size"])), 4),
        "divergences": int(res.sample_stats["diverging"].sum()),
        "nuts_wall_s": round(time.perf_counter() - t0, 1),
    }


def project(rows: list[dict], target_obs: int, shards: int = 1) -> dict:
    """Least-squares ``t = a + b n`` (gradient ms) over measured rows; ``bytes = c n``."""
    import numpy as np

    pts = [(r["n_obs"], m) for r in rows for m in r["gradient"] if m["shards"] == shards]
    if len(pts) < 2:
        return {}
    n = np.array([p[0] for p in pts], dtype=np.float64)
    t = np.array([p[1]["grad_ms_median"] for p in pts])
    b, a = np.polyfit(n, t, 1)
    mem = [(p[0], p[1]["bytes_per_obs"]) for p in pts if p[1]["bytes_per_obs"]]
    c = mem[-1][1] if mem else float("nan")  # the largest size: fixed costs amortised
    return {"shards": shards, "a_ms": round(float(a), 3), "b_ms_per_1e6": round(float(b) * 1e6, 3),
            "bytes_per_obs": round(float(c), 1), "target_obs": target_obs,
            "target_grad_ms": round(float(a + b * target_obs), 1),
            "target_gb": round(c * target_obs / 1e9, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="models x items, comma-separated")
    ap.add_argument("--benchmarks", type=int, default=6)
    ap.add_argument("--density", type=float, default=0.7)
    ap.add_argument("--shards", default="1", help="shard counts to time, e.g. 1,2")
    ap.add_argument("--nuts-max-obs", type=int, default=0,
                    help="short NUTS runs (steps per draw) at sizes up to this many obs")
    ap.add_argument("--nuts-warmup", type=int, default=200)
    ap.add_argument("--nuts-draws", type=int, default=50)
    ap.add_argument("--min-seconds", type=float, default=3.0, help="timing per measurement")
    ap.add_argument("--max-reps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the records here")
    args = ap.parse_args()
    shard_counts = [int(s) for s in args.shards.split(",")]

    if args.device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_force_host_platform_device_count" not in flags:
            os.environ["XLA_FLAGS"] = (
                f"{flags} --xla_force_host_platform_device_count={max(shard_counts)}").strip()
    import jax

    from bayesirt.inference.nuts import select_devices
    from bayesirt.models import build_inputs

    devices = select_devices(args.device)
    dev = devices[0]
    machine = (f"{dev.platform}:{dev.device_kind} x{len(devices)}, {os.cpu_count()} CPU cores, "
               f"{platform.processor() or platform.machine()}, python "
               f"{platform.python_version()}, jax {jax.__version__}")
    print(f"# {machine}", flush=True)
    rows = []
    for n_models, n_items in parse_sizes(args.sizes):
        t0 = time.perf_counter()
        data = simulate_size(n_models, n_items, args.benchmarks, args.density, args.seed)
        inputs = build_inputs(data)
        row = {"models": n_models, "items": n_items, "benchmarks": args.benchmarks,
               "density": args.density, "n_obs": int(inputs.sizes["n_obs"]),
               "n_params": int(inputs.sizes["n_cells"] + 2 * inputs.sizes["n_items"]),
               "simulate_and_inputs_s": round(time.perf_counter() - t0, 1), "gradient": []}
        for n in shard_counts:
            if n > len(devices):
                continue
            row["gradient"].append(time_gradient(inputs, n, devices, args.min_seconds,
                                                 args.max_reps))
            print(json.dumps({"n_obs": row["n_obs"], **row["gradient"][-1]}), flush=True)
        if row["n_obs"] <= args.nuts_max_obs:
            row.update(short_nuts(data, args.nuts_warmup, args.nuts_draws, args.seed))
            print(json.dumps({"n_obs": row["n_obs"], "steps_per_draw": row["steps_per_draw"],
                              "nuts_wall_s": row["nuts_wall_s"]}), flush=True)
        rows.append(row)
        del data, inputs
    target_obs = int(TARGET[0] * TARGET[1] * args.density)
    projections = [p for p in (project(rows, target_obs, s) for s in shard_counts) if p]
    record = {"machine": machine, "created": time.strftime("%Y-%m-%d %H:%M"), "rows": rows,
              "projections": projections}
    print(json.dumps(record, indent=1))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(record, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
