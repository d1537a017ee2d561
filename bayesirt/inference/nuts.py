"""Fit a registered model with NumPyro's NUTS and return a :class:`FitResult`.

Process-global JAX settings (platform, host device count, XLA flags) are the CLI's job; this
module only reads which devices JAX sees.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import platform
import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import MCMC, NUTS, init_to_median
from numpyro.infer.util import log_likelihood as _numpyro_log_likelihood

from bayesirt import __version__
from bayesirt.errors import InputError
from bayesirt.inference import sharding
from bayesirt.inference.result import FitResult
from bayesirt.inference.warmstart import advi_init, block_sites, split_inverse_mass
from bayesirt.models import MODELS, ModelSpec, build_inputs, contract_posterior, get_model
from bayesirt.models.blocks import n_blocks, response_blocks
from bayesirt.models.inputs import PARAMETERISATIONS

# Above this many observations, model arguments are passed as traced arguments instead of
# being baked into the compiled program as constants (which stalls XLA at millions of rows);
# below it constants are faster (measured ~40% on small CPU fits).
JIT_ARGS_THRESHOLD = 200_000


@dataclass(frozen=True)
class FitConfig:
    """Everything that defines a fit, validated up front.

    Attributes
    ----------
    model : str
        Registry name (``rasch``, ``2pl``, ``hier2pl``).
    chains, warmup, draws : int
        Number of chains, warm-up iterations and kept draws per chain. Warm-up defaults to
        1,500: with 1,000, one seed of three on the small real set ended at R-hat 1.0105 for
        one of 2,305 parameters (the discrimination spread of a 7-model benchmark). Draws:
        None means the model's default (``ModelSpec.draws``: 2,000 for ``hier2pl``, 1,000
        for the others).
    max_tree_depth : int
        NUTS tree-depth limit (at most 2**depth - 1 leapfrog steps per draw).
    target_accept : float or None
        Dual-averaging target acceptance probability, in (0, 1); None means the model's
        default (``ModelSpec.target_accept``: 0.99 for ``hier2pl``, 0.8 for the others).
    device : str
        ``auto`` (GPU when JAX sees one), ``cpu`` or ``gpu``.
    devices : int
        Shard the likelihood's observation axis over this many devices of that platform
        (``bayesirt.inference.sharding``): parameters replicated, chains vectorised, model
        data passed as traced arguments. 1 (the default) runs the unsharded program.
    guess : bool
        Per-benchmark lower asymptote (``hier2pl`` only).
    contamination : bool
        Per-(model, benchmark) leak probability: a response may be a forced success
        (``hier2pl`` only; ``bayesirt.models.irt.leak_floor``).
    metadata : bool
        Each model's general ability gets a prior mean from its metadata (parameter count,
        instruct flag, release date, organisation; ``hier2pl`` only;
        ``bayesirt.models.factor.metadata_ability_prior``), so a NEW model with metadata gets an
        informed ability prior.
    outliers : bool
        A (model, benchmark) cell's ability may be an outlier, unrelated to the general
        ability (``hier2pl`` only; ``bayesirt.models.factor.outlier_configurations``).
    embedding_components : int
        PCA components of item embeddings in the difficulty prior (``hier2pl`` only).
    parameterisation : str
        ``auto`` (centred item/category parameters where the data pin them down, non-centred
        elsewhere; ``hier2pl`` only), ``centred`` or ``noncentred``. Same model, different
        sampler geometry (see ``bayesirt.models.inputs.parameterisation_masks``).
    jit_model_args : str or bool
        ``auto`` chooses by data size (see ``JIT_ARGS_THRESHOLD``).
    init : str
        ``advi``: start each chain from a jittered draw of a mean-field ADVI fit and take its
        scales as the initial diagonal mass matrix (warm-up then starts with sensible step
        sizes instead of spending its first windows on 1,023-step trajectories);
        ``median``: NumPyro's ``init_to_median`` and a unit mass matrix.
    init_steps : int
        Optimisation steps of the ADVI initialisation.
    mass_matrix : str
        ``diagonal`` (the default) or ``block``: one dense block over the benchmark- and
        category-level hyperparameters and the population of benchmarks (``BLOCK_SITES``),
        diagonal elsewhere. Their correlations (a benchmark's difficulty mean against its
        spread, a discrimination mean against its spread) are what a diagonal metric cannot
        follow; the block is small (a few sites per benchmark), so its cost is nil beside
        the gradient.
        Measured in ``bench/results/sampler_levers.md``.
    log_likelihood : bool
        Compute pointwise log-likelihood (for LOO); memory is chains x draws x n_obs floats.
    dense_blocks : bool
        Let the sampler read the responses of dense benchmarks as (cell x item) blocks
        (:mod:`bayesirt.models.blocks`; models with ``ModelSpec.blocks``, unsharded fits):
        the same posterior, 3.6x faster gradients on the dev set's CPU. Off by default: on
        the dev set such a fit's memory grew ~10 MB per iteration (2 chains in parallel;
        the pointwise form's stays flat) until the kernel killed it after ~2,200
        iterations (``bench/results/blocks.md``); fine for short fits until that is fixed.
    progress : bool
        Show a progress bar.
    seed : int or None
        The seed the caller derived ``rng_key`` from, recorded for provenance only.
    """

    model: str = "hier2pl"
    chains: int = 4
    warmup: int = 1500
    draws: int | None = None
    max_tree_depth: int = 10
    target_accept: float | None = None
    device: str = "auto"
    devices: int = 1
    guess: bool = False
    contamination: bool = False
    outliers: bool = False
    metadata: bool = False
    embedding_components: int = 0
    parameterisation: str = "auto"
    jit_model_args: str | bool = "auto"
    init: str = "advi"
    init_steps: int = 1500
    mass_matrix: str = "diagonal"
    log_likelihood: bool = False
    dense_blocks: bool = False
    progress: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        # Fill the model's sampler defaults in, so that the config (and the provenance it
        # writes) always holds the numbers the sampler ran with. An unknown model keeps the
        # generic ones here; validate() names it.
        spec = MODELS.get(self.model)
        if self.draws is None:
            object.__setattr__(self, "draws", spec.draws if spec else ModelSpec.draws)
        if self.target_accept is None:
            object.__setattr__(self, "target_accept",
                               spec.target_accept if spec else ModelSpec.target_accept)

    def validate(self) -> FitConfig:
        """Check every field; return self so calls can chain.

        Raises
        ------
        ValueError
            Naming the field and the bad value.
        """
        spec = get_model(self.model)
        for name in ("chains", "draws", "max_tree_depth", "devices"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise InputError(f"warmup must be a non-negative integer, got {self.warmup!r}")
        if not 0.0 < float(self.target_accept) < 1.0:
            raise InputError(f"target_accept must be in (0, 1), got {self.target_accept!r}")
        if self.device not in ("auto", "cpu", "gpu"):
            raise InputError(f"device must be auto, cpu or gpu, got {self.device!r}")
        if self.jit_model_args not in ("auto", True, False):
            raise InputError(
                f"jit_model_args must be auto, True or False, got {self.jit_model_args!r}"
            )
        if self.devices > 1 and self.jit_model_args is False:
            raise InputError(
                f"devices={self.devices} needs jit_model_args (sharded data cannot be baked "
                "into the compiled program as constants); got jit_model_args=False"
            )
        if self.embedding_components < 0:
            raise InputError(
                f"embedding_components must be >= 0, got {self.embedding_components!r}"
            )
        if self.parameterisation not in PARAMETERISATIONS:
            raise InputError(
                f"parameterisation must be one of {', '.join(PARAMETERISATIONS)}, "
                f"got {self.parameterisation!r}"
            )
        if self.parameterisation != "auto" and self.model != "hier2pl":
            raise InputError(
                f"parameterisation={self.parameterisation!r} applies to hier2pl only "
                f"(model {self.model!r} has no hierarchical item parameters)"
            )
        if self.mass_matrix not in ("diagonal", "block"):
            raise InputError(
                f"mass_matrix must be diagonal or block, got {self.mass_matrix!r}"
            )
        if self.init not in ("advi", "median"):
            raise InputError(f"init must be advi or median, got {self.init!r}")
        if not isinstance(self.init_steps, int) or self.init_steps < 1:
            raise InputError(f"init_steps must be a positive integer, got {self.init_steps!r}")
        for option, used in (
            ("guess", self.guess),
            ("contamination", self.contamination),
            ("metadata", self.metadata),
            ("outliers", self.outliers),
            ("embedding_components", self.embedding_components),
        ):
            if used and option not in spec.options:
                raise InputError(
                    f"model {self.model!r} does not take option {option!r} "
                    f"(it takes: {', '.join(spec.options) or 'none'})"
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for provenance attrs)."""
        return dataclasses.asdict(self)


def select_devices(device: str) -> list[Any]:
    """Return the JAX devices to run on.

    Parameters
    ----------
    device : str
        ``auto``, ``cpu`` or ``gpu``.

    Raises
    ------
    ValueError
        If ``gpu`` is asked for and JAX sees none.
    """
    if device == "cpu":
        return jax.devices("cpu")
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if device == "gpu" and not gpus:
        raise InputError(
            "--device gpu was asked for but JAX sees no GPU (install the CUDA build: "
            "pip install 'bayesirt[cuda]', or use --device cpu)"
        )
    return gpus or jax.devices("cpu")


def _tree_depth(n_steps: np.ndarray) -> np.ndarray:
    """Tree depth from leapfrog step counts: a depth-d trajectory has at most 2**d - 1 steps."""
    return np.floor(np.log2(np.maximum(n_steps, 1))).astype(np.int32) + 1


def fit(rng_key: jax.Array, data: Any, config: FitConfig) -> FitResult:
    """Fit ``config.model`` to ``data`` by NUTS.

    Parameters
    ----------
    rng_key : jax.Array
        PRNG key; split for sampling and for completing unobserved abilities.
    data : bayesirt.data.IRTData
        Validated training data.
    config : FitConfig
        The fit's settings (validated here).

    Returns
    -------
    FitResult
        Draws mapped to the shared posterior variables, sampler statistics and provenance.

    Raises
    ------
    ValueError
        On an invalid configuration or device request.
    """
    config.validate()
    spec = get_model(config.model)
    devices = select_devices(config.device)
    inputs = build_inputs(
        data,
        embedding_components=config.embedding_components,
        parameterisation=config.parameterisation,
        metadata=config.metadata,
    )
    sizes = dict(inputs.sizes)
    jit_args = (
        sizes["n_obs"] > JIT_ARGS_THRESHOLD or config.devices > 1
        if config.jit_model_args == "auto"
        else bool(config.jit_model_args)
    )
    sharded = None
    if config.devices > 1:
        # One fit over several devices: observations sharded, chains vectorised.
        devices = sharding.mesh_devices(devices, config.devices)
        sharded = sharding.shard_inputs(inputs.arrays, inputs.response, sizes, devices)
        sizes = sharded.sizes
    # Every model takes (or ignores, through **_unused) the option keywords.
    model = functools.partial(spec.fn, **sizes, guess=config.guess,
                              contamination=config.contamination, metadata=config.metadata,
                              outliers=config.outliers)
    if sharded is not None:
        model = sharding.masked_model(model)
    block_arrays: dict[str, np.ndarray] = {}
    if sharded is None and spec.blocks and config.dense_blocks:
        block_arrays = response_blocks(
            inputs.arrays["obs_cell"], inputs.arrays["obs_item"], inputs.response,
            inputs.arrays["cell_benchmark"], inputs.arrays["item_benchmark"])
    # The sampler's model reads the blocks; the pointwise log-likelihood (LOO) needs every
    # response as its own term, so it keeps the pointwise form of the same model.
    pointwise_model = model
    if n_blocks(block_arrays):
        model = functools.partial(model, likelihood="blocks")
    chain_method = (
        "parallel" if sharded is None and len(devices) >= config.chains > 1 else "vectorized"
    )
    # This process's own first device (with several hosts, devices[0] is process 0's).
    home = sharding.home_device(devices)
    sample_key, complete_key, init_key = jax.random.split(rng_key, 3)
    with jax.default_device(home):
        if sharded is not None:
            arrays, y = sharded.arrays, sharded.y
        else:
            arrays = {key: jnp.asarray(val)
                      for key, val in {**inputs.arrays, **block_arrays}.items()}
            # float32 responses: Bernoulli.log_prob multiplies them with float logits.
            y = jnp.asarray(inputs.response, dtype=jnp.float32)
        init_params, inverse_mass = None, None
        init_seconds = 0.0
        if config.init == "advi":
            started = time.perf_counter()
            init_params, inverse_mass = advi_init(
                init_key, model, arrays, y, config.chains, config.init_steps,
                progress=config.progress,
            )
            init_seconds = time.perf_counter() - started
    dense_mass: list[tuple[str, ...]] | bool = False
    if config.mass_matrix == "block":
        block = block_sites(model, arrays, y, init_key)
        if block:
            dense_mass = [block]
            if inverse_mass is not None:
                inverse_mass = split_inverse_mass(inverse_mass, init_params, block,
                                                  config.chains)
    kernel = NUTS(
        model,
        target_accept_prob=config.target_accept,
        max_tree_depth=config.max_tree_depth,
        init_strategy=init_to_median(num_samples=15),
        inverse_mass_matrix=inverse_mass,
        dense_mass=dense_mass,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=config.warmup,
        num_samples=config.draws,
        num_chains=config.chains,
        chain_method=chain_method,
        progress_bar=config.progress,
        jit_model_args=jit_args,
    )
    with jax.default_device(home):
        started = time.perf_counter()
        mcmc.run(
            sample_key,
            arrays,
            y=y,
            init_params=init_params,
            extra_fields=(
                "diverging",
                "num_steps",
                "energy",
                "accept_prob",
                "adapt_state.step_size",
                "potential_energy",
            ),
        )
        samples = jax.device_get(mcmc.get_samples(group_by_chain=True))
        wall = time.perf_counter() - started
        log_lik = None
        if config.log_likelihood:
            # Padded observations (sharded fits) are cut off.
            log_lik = _pointwise_log_likelihood(pointwise_model, mcmc, arrays, y)[
                ..., : inputs.sizes["n_obs"]]
    extra = jax.device_get(mcmc.get_extra_fields(group_by_chain=True))

    seed_words = np.asarray(jax.random.key_data(complete_key)).ravel()
    rng = np.random.default_rng(seed_words.astype(np.uint64))
    posterior, dims = contract_posterior(config.model, samples, inputs, rng)
    n_steps = np.asarray(extra["num_steps"]).astype(np.int64)
    sample_stats = {
        "diverging": np.asarray(extra["diverging"]).astype(bool),
        "n_steps": n_steps,
        "tree_depth": _tree_depth(n_steps),
        "energy": np.asarray(extra["energy"], dtype=np.float64),
        "acceptance_rate": np.asarray(extra["accept_prob"], dtype=np.float64),
        "step_size": np.asarray(extra["adapt_state.step_size"], dtype=np.float64),
        "lp": -np.asarray(extra["potential_energy"], dtype=np.float64),
    }
    provenance = {
        "bayesirt_version": __version__,
        "jax_version": jax.__version__,
        "numpyro_version": numpyro.__version__,
        "python_version": platform.python_version(),
        "device": f"{devices[0].platform}:{devices[0].device_kind}",
        "n_devices": len(devices),
        "obs_shards": config.devices,
        "chain_method": chain_method,
        "dense_blocks": n_blocks(block_arrays),
        "jit_model_args": jit_args,
        "sampling_wall_seconds": round(wall, 3),
        "init": config.init,
        "init_wall_seconds": round(init_seconds, 3),
        "gradient_evaluations": int(n_steps.sum()),
        "fingerprint": getattr(data, "fingerprint", ""),
        "data_source": str(getattr(data, "source", "")),
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return FitResult(
        model_name=config.model,
        posterior=posterior,
        dims=dims,
        sample_stats=sample_stats,
        observed={"response": inputs.response},
        coords=inputs.coords,
        config=config.to_dict(),
        provenance=provenance,
        max_tree_depth=config.max_tree_depth,
        log_likelihood=log_lik,
        constant_data=inputs.constants,
        constant_dims=inputs.constant_dims,
    )


def _pointwise_log_likelihood(model, mcmc, arrays, y, chunk: int = 100) -> np.ndarray:
    """Pointwise log-likelihood (chains, draws, n_obs) in float32, computed in draw chunks.

    Chunking bounds device memory at ``chunk * chains * n_obs`` floats.
    """
    samples = mcmc.get_samples(group_by_chain=False)
    n_total = next(iter(samples.values())).shape[0]
    pieces = []
    for start in range(0, n_total, chunk):
        part = {key: val[start : start + chunk] for key, val in samples.items()}
        ll = _numpyro_log_likelihood(model, part, arrays, y=y)["y"]
        pieces.append(np.asarray(jax.device_get(ll), dtype=np.float32))
    flat = np.concatenate(pieces, axis=0)
    n_chains = mcmc.num_chains
    return flat.reshape(n_chains, n_total // n_chains, -1)
