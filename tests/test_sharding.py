"""``devices``: one fit's observation axis sharded over forced CPU host devices.

conftest.py gives this process 2 host devices; the 4-shard case runs in a subprocess with its
own ``XLA_FLAGS`` (so the other test files keep their 2 devices and chain methods).

Finding on the draws: the sharded program computes the same log density and gradient up to
float32 rounding (per-device partial sums, then an all-reduce, and XLA fuses the partitioned
program differently). With a fixed step size (no warm-up) the draws come out identical; with
warm-up, the step-size adaptation feeds acceptance probabilities that differ in the 7th digit
back into the step size, and the chains part within ~10 iterations. So sharded fits give
draws equal in distribution, not bit for bit, and that is what is tested.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bayesirt.errors import InputError
from bayesirt.inference import FitConfig, fit, sharding
from bayesirt.models.simulate import simulate

HERE = Path(__file__).resolve().parent


@functools.cache
def _bundled_inputs():
    from bayesirt import data as _data
    from bayesirt.models import build_inputs

    return build_inputs(_data.load(_data.bundled_dataset()))


def _real_inputs(drop: int = 0):
    """Model inputs of the bundled small real set; ``drop`` removes the last observations.

    8,844 observations divide by 1, 2 and 4; dropping one makes 2 and 4 shards pad (the
    parameters keep their shapes: only the observation arrays are cut).
    """
    inputs = _bundled_inputs()
    if not drop:
        return inputs.arrays, inputs.response, inputs.sizes
    n = inputs.sizes["n_obs"] - drop
    arrays = {k: (v[:n] if k in sharding.OBS_ARRAYS else v) for k, v in inputs.arrays.items()}
    return arrays, inputs.response[:n], {**inputs.sizes, "n_obs": n}


def _start_point(arrays, response, sizes):
    """Where the sampler starts: NumPyro's median initialisation, unconstrained (potential
    ~9,500 on the small set). Traced under jit: the eager ``initialize_model`` costs 15 s."""
    import jax
    import jax.numpy as jnp
    from numpyro import handlers
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer import init_to_median

    from bayesirt.models import get_model

    model = functools.partial(get_model("hier2pl").fn, **sizes)
    seeded = handlers.substitute(handlers.seed(model, jax.random.key(0)),
                                 substitute_fn=init_to_median(num_samples=15))

    def unconstrained(data, y):
        tr = handlers.trace(seeded).get_trace(data, y=y)
        return {name: biject_to(site["fn"].support).inv(site["value"])
                for name, site in tr.items()
                if site["type"] == "sample" and not site["is_observed"]}

    point = jax.jit(unconstrained)({k: jnp.asarray(v) for k, v in arrays.items()},
                                   jnp.asarray(response, jnp.float32))
    return {k: np.asarray(v) for k, v in point.items()}


def value_and_grad(arrays, response, sizes, point, n_shards):
    """Potential energy and its gradient at ``point``; ``n_shards=None``: unsharded program.

    Returns
    -------
    value : float
    grad : dict of str to ndarray
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import potential_energy

    from bayesirt.models import get_model

    fn = get_model("hier2pl").fn
    if n_shards is None:
        model = functools.partial(fn, **sizes)
        data = {k: jnp.asarray(v) for k, v in arrays.items()}
        y = jnp.asarray(response, jnp.float32)
    else:
        placed = sharding.shard_inputs(arrays, response, sizes, jax.devices()[:n_shards])
        model = sharding.masked_model(functools.partial(fn, **placed.sizes))
        data, y = placed.arrays, placed.y
    run = jax.jit(jax.value_and_grad(
        lambda p, d, yy: potential_energy(model, (d,), {"y": yy}, p)))
    value, grad = run({k: jnp.asarray(v) for k, v in point.items()}, data, y)
    return float(value), {k: np.asarray(v) for k, v in grad.items()}


def _differences(reference, other):
    """Max |value diff| and max over sites of max |grad diff| / (1 + max |grad|)."""
    v0, g0 = reference
    v, g = other
    grad_abs = max(float(np.max(np.abs(g[k] - g0[k]))) for k in g0)
    grad_rel = max(float(np.max(np.abs(g[k] - g0[k]))) / (1.0 + float(np.max(np.abs(g0[k]))))
                   for k in g0)
    return abs(v - v0), grad_abs, grad_rel


def _assert_same(reference, other, label):
    v_diff, _, grad_rel = _differences(reference, other)
    # float32: sums of ~9,000 terms, reordered; 1e-5 relative is ~100 ulp.
    assert v_diff <= 1e-5 * abs(reference[0]), f"{label}: log density differs by {v_diff}"
    assert grad_rel <= 1e-5, f"{label}: gradient differs by {grad_rel:.2e} relative"


@pytest.fixture(scope="module")
def references():
    """Unsharded value and gradient, full data and one observation short (padded cases)."""
    import jax

    out = {}
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        point = _start_point(*_real_inputs())
        for drop in (0, 1):
            arrays, response, sizes = _real_inputs(drop)
            out[drop] = (arrays, response, sizes, point,
                         value_and_grad(arrays, response, sizes, point, None))
    return out


def test_padding_adds_masked_cells_with_valid_indices():
    arrays = {"model_idx": np.arange(5, dtype=np.int32), "obs_item": np.arange(5, dtype=np.int32),
              "item_benchmark": np.zeros(3, np.int32)}
    padded, y = sharding.pad_observations(arrays, np.ones(5, np.int32), 4)
    assert padded["model_idx"].tolist() == [0, 1, 2, 3, 4, 0, 0, 0]
    assert padded["obs_mask"].tolist() == [True] * 5 + [False] * 3
    assert y.tolist() == [1] * 5 + [0] * 3
    assert padded["item_benchmark"] is arrays["item_benchmark"]  # not observation-indexed
    assert sharding.padded_size(8, 4) == 8 and sharding.padded_size(9, 4) == 12


@pytest.mark.usefixtures("numpyro_lenient")
@pytest.mark.parametrize(("n_shards", "drop"), [(1, 0), (2, 0), (2, 1)],
                         ids=["1-shard", "2-shards", "2-shards-padded"])
def test_sharded_log_density_and_gradient_equal_the_unsharded(references, n_shards, drop):
    arrays, response, sizes, point, reference = references[drop]
    other = value_and_grad(arrays, response, sizes, point, n_shards)
    _assert_same(reference, other, f"{n_shards} shards, {sizes['n_obs']} obs")


def _four_shards_main(point_file: str, out_file: str) -> None:
    """Subprocess body: 4-shard values and gradients for both data variants."""
    import jax

    assert len(jax.devices()) == 4, jax.devices()
    point = dict(np.load(point_file))
    result = {}
    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        for drop in (0, 1):
            arrays, response, sizes = _real_inputs(drop)
            prefix = f"d{drop}/"
            p = {k[len(prefix):]: v for k, v in point.items() if k.startswith(prefix)}
            value, grad = value_and_grad(arrays, response, sizes, p, 4)
            result[f"d{drop}/__value__"] = np.float64(value)
            result.update({f"d{drop}/{k}": v for k, v in grad.items()})
    np.savez(out_file, **result)


def test_four_shards_in_a_subprocess_equal_the_unsharded(references, tmp_path):
    point = {f"d{drop}/{k}": v for drop, ref in references.items() for k, v in ref[3].items()}
    np.savez(tmp_path / "point.npz", **point)
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import test_sharding as t; "
            f"t._four_shards_main({str(tmp_path / 'point.npz')!r}, "
            f"{str(tmp_path / 'out.npz')!r})")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = dict(np.load(tmp_path / "out.npz"))
    for drop, ref in references.items():
        value = float(out.pop(f"d{drop}/__value__"))
        grad = {k.split("/", 1)[1]: v for k, v in out.items() if k.startswith(f"d{drop}/")}
        _assert_same(ref[4], (value, grad), f"4 shards, {ref[2]['n_obs']} obs")


def _tiny():
    # 161 observations: odd, so 2 shards pad one cell. The fits use the Rasch model: the
    # sharding is the same for every model (the observation site), and its NUTS program
    # compiles in a third of hier2pl's time (the equality of hier2pl's density is above).
    data, _ = simulate(np.random.default_rng(7), "hier2pl", n_models=8,
                       items_per_benchmark=(12, 13), categories_per_benchmark=(2, 1))
    assert data.n_obs % 2 == 1
    return data


@pytest.mark.usefixtures("numpyro_lenient")
def test_sharded_fit_with_a_fixed_step_size_gives_the_same_draws(rng_key):
    """No warm-up: the same trajectories, draw for draw (and the same pointwise log-lik)."""
    data = _tiny()
    runs = {
        d: fit(rng_key, data, FitConfig(model="rasch", chains=1, warmup=0, draws=60, devices=d,
                                        init="median",
                                        jit_model_args=True, log_likelihood=True,
                                        progress=False))
        for d in (1, 2)
    }
    assert runs[2].provenance["obs_shards"] == 2
    assert runs[2].provenance["chain_method"] == "vectorized"
    for name, value in runs[1].posterior.items():
        np.testing.assert_allclose(runs[2].posterior[name], value, rtol=1e-5, atol=1e-5,
                                   err_msg=name)
    np.testing.assert_array_equal(runs[2].sample_stats["n_steps"], runs[1].sample_stats["n_steps"])
    assert runs[2].log_likelihood.shape == (1, 60, data.n_obs)  # padding cut off
    np.testing.assert_allclose(runs[2].log_likelihood, runs[1].log_likelihood, atol=1e-5)


@pytest.mark.usefixtures("numpyro_lenient")
def test_sharded_fit_with_warmup_gives_draws_equal_in_distribution(rng_key):
    """With warm-up the draws part (adaptation amplifies rounding); the posterior agrees.

    Gate: every posterior mean of the hyperparameters and of the item difficulties agrees
    within 4 combined Monte Carlo standard errors (blackjax style, not a fixed tolerance).
    """
    from arviz_stats.base import array_stats

    data = _tiny()
    runs = {
        d: fit(rng_key, data, FitConfig(model="rasch", chains=2, warmup=150, draws=300,
                                        devices=d, init="median", progress=False))
        for d in (1, 2)
    }
    for name in ("mu_difficulty", "sigma_difficulty", "difficulty", "ability"):
        means, errors = [], []
        for d in (1, 2):
            x = np.asarray(runs[d].posterior[name], dtype=np.float64)
            x = np.moveaxis(x.reshape(x.shape[0], x.shape[1], -1), -1, 0)
            means.append(x.mean(axis=(1, 2)))
            errors.append(array_stats.mcse(x, chain_axis=-2, draw_axis=-1, method="mean"))
        z = np.abs(means[0] - means[1]) / np.sqrt(errors[0] ** 2 + errors[1] ** 2)
        assert z.max() < 4.0, f"{name}: posterior means differ by {z.max():.1f} MCSE"


def test_devices_config_is_validated():
    with pytest.raises(ValueError, match="devices must be a positive integer, got 0"):
        FitConfig(devices=0).validate()
    with pytest.raises(ValueError, match="needs jit_model_args"):
        FitConfig(devices=2, jit_model_args=False).validate()
    with pytest.raises(InputError, match="devices=3 asked for, but JAX sees 2 cpu"):
        import jax

        sharding.mesh_devices(jax.devices("cpu"), 3)


def test_cli_forces_enough_host_devices(monkeypatch):
    from bayesirt import cli, commands

    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    commands.configure_jax("cpu", 1, devices=4)
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=4"
    args = cli.build_parser().parse_args(["fit", "data/", "--out", "p.nc", "--devices", "4"])
    assert commands.fit_config(args)["devices"] == 4



@pytest.mark.slow
def test_two_processes_fit_as_one_multi_host_run(tmp_path, small_dir):
    """Two `bayesirt fit` processes on localhost (one host device each) = one 2-device mesh."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bayesirt = Path(sys.executable).with_name("bayesirt")
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
               "BAYESIRT_NUM_PROCESSES": "2", "BAYESIRT_PROCESS_ID": str(rank),
               "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
        procs.append(subprocess.Popen(
            [str(bayesirt), "fit", str(small_dir), "--out", str(tmp_path / f"post.{rank}.nc"),
             "--device", "cpu", "--devices", "2", "--chains", "2", "--warmup", "30",
             "--draws", "30", "--no-progress"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    import xarray as xr

    posts = [xr.open_datatree(tmp_path / f"post.{rank}.nc") for rank in (0, 1)]
    for name in ("difficulty", "ability"):  # every host ends with the same draws
        np.testing.assert_array_equal(posts[0]["posterior"][name].values,
                                      posts[1]["posterior"][name].values)
