"""Shard one fit's observation axis across devices with ``jax.sharding``.

The likelihood is a sum over observations, so its cost (and memory) splits cleanly: each of
``N`` devices holds ``n_obs / N`` rows of the observation-indexed arrays (``model_idx``,
``obs_item``, ``obs_cell``, the responses) and every parameter in full. The model code does
not change: the data arrive as global arrays laid out over a one-axis mesh (``obs``), and
XLA's SPMD partitioner splits the gathers, the Bernoulli terms and their sum (a partial sum
per device, then one all-reduce) and, in the gradient, the scatter-adds into the replicated
parameters. Chains are vectorised (``chain_method="vectorized"``), so every device works on
its slice of every chain's likelihood. The same code runs on forced CPU host devices, on
the GPUs of one host and, after ``jax.distributed.initialize``, on the devices of several
hosts (:func:`global_array` builds arrays from each process's own shards).

Padding. The observation count is padded up to a multiple of ``N`` with copies of index 0
and response 0, and the likelihood site is masked (:class:`ObservationMask`): a padded cell
contributes exactly 0 to the log density and its gradient, so the posterior is the same
model. Only the reduction order of the sum differs from the unsharded program (float32
rounding), see ``tests/test_sharding.py`` for what that does to the draws.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec
from numpyro.primitives import Messenger

from bayesirt.errors import InputError

OBS_AXIS = "obs"
# The observed sample site of every registered model (``bayesirt.models.irt._likelihood``).
OBS_SITE = "y"
# Model arrays with one entry per observation (``ModelInputs.arrays``): sharded and padded.
OBS_ARRAYS = ("model_idx", "obs_item", "obs_cell")
MASK_KEY = "obs_mask"


class ObservationMask(Messenger):
    """Mask the observation site: masked-out (padding) cells add 0 to the log density.

    Parameters
    ----------
    fn : callable, optional
        The model (as with every NumPyro handler).
    mask : Array of bool, shape (n_obs,)
        True for real observations, False for padding.
    """

    def __init__(self, fn=None, mask=None):
        self.mask = mask
        super().__init__(fn)

    def process_message(self, msg):  # noqa: D102 (NumPyro handler hook)
        if msg["type"] == "sample" and msg["name"] == OBS_SITE:
            msg["fn"] = msg["fn"].mask(self.mask)


def masked_model(model):
    """Wrap ``model(data, **kw)`` so that ``data[MASK_KEY]`` masks the observation site.

    Parameters
    ----------
    model : callable
        A registered model with its static sizes bound.

    Returns
    -------
    callable
        The same model; padded observations contribute nothing.
    """

    def wrapped(data, *args, **kwargs):
        with ObservationMask(mask=data[MASK_KEY]):
            return model(data, *args, **kwargs)

    return wrapped


def padded_size(n_obs: int, n_shards: int) -> int:
    """Smallest multiple of ``n_shards`` that is >= ``n_obs``."""
    return -(-int(n_obs) // int(n_shards)) * int(n_shards)


def pad_observations(
    arrays: dict[str, np.ndarray], response: np.ndarray, n_shards: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Pad the observation-indexed arrays to a multiple of ``n_shards`` and add the mask.

    Parameters
    ----------
    arrays : dict of str to ndarray
        ``ModelInputs.arrays`` (numpy); the keys in ``OBS_ARRAYS`` that are present are
        padded with index 0 (a valid index, so the padded gathers stay in bounds).
    response : ndarray, shape (n_obs,)
        0/1 responses; padded with 0.
    n_shards : int
        Number of shards of the observation axis.

    Returns
    -------
    arrays : dict of str to ndarray
        A copy with padded observation arrays and ``obs_mask`` (n_padded,) bool.
    response : ndarray, shape (n_padded,)

    Raises
    ------
    ValueError
        If an observation array's length differs from the number of responses.
    """
    n_obs = int(np.asarray(response).shape[0])
    n_pad = padded_size(n_obs, n_shards) - n_obs
    out = dict(arrays)
    for key in OBS_ARRAYS:
        if key not in out:
            continue
        value = np.asarray(out[key])
        if value.shape[:1] != (n_obs,):
            raise InputError(f"{key} has shape {value.shape}, expected ({n_obs}, ...)")
        out[key] = np.concatenate([value, np.zeros((n_pad, *value.shape[1:]), value.dtype)])
    out[MASK_KEY] = np.concatenate([np.ones(n_obs, bool), np.zeros(n_pad, bool)])
    response = np.asarray(response)
    return out, np.concatenate([response, np.zeros(n_pad, response.dtype)])


def observation_mesh(devices: list[Any]) -> jax.sharding.Mesh:
    """One-axis mesh (``obs``) over ``devices``, in auto (GSPMD-propagated) sharding mode."""
    return jax.make_mesh((len(devices),), (OBS_AXIS,), axis_types=(AxisType.Auto,),
                         devices=list(devices))


def global_array(value: np.ndarray, sharding: jax.sharding.Sharding, dtype=None) -> jax.Array:
    """Lay a host array out over ``sharding``; each process fills only its own shards.

    With several hosts (``jax.distributed.initialize``) every process holds the full numpy
    array (the data are loaded on each host) and contributes the slices its devices own.
    """
    value = np.asarray(value, dtype=dtype)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


@dataclass(frozen=True)
class ShardedInputs:
    """Model data laid out over an observation mesh.

    Attributes
    ----------
    arrays : dict of str to jax.Array
        Observation arrays (and ``obs_mask``) sharded over ``obs``, the rest replicated.
    y : jax.Array, shape (n_padded,)
        Responses (float32), sharded; 0 in padded cells.
    sizes : dict of str to int
        The model's static sizes with ``n_obs`` = the padded count (the plate size).
    n_obs : int
        Real observations (pointwise outputs are cut back to this many).
    mesh : jax.sharding.Mesh
    """

    arrays: dict[str, jax.Array]
    y: jax.Array
    sizes: dict[str, int]
    n_obs: int
    mesh: jax.sharding.Mesh


def shard_inputs(
    arrays: dict[str, np.ndarray],
    response: np.ndarray,
    sizes: dict[str, int],
    devices: list[Any],
) -> ShardedInputs:
    """Pad, mask and lay the model data out over a mesh of ``devices`` along observations.

    Parameters
    ----------
    arrays : dict of str to ndarray
        ``ModelInputs.arrays``.
    response : ndarray, shape (n_obs,)
    sizes : dict of str to int
        ``ModelInputs.sizes``.
    devices : list of jax.Device
        The mesh's devices (global devices with several hosts).

    Returns
    -------
    ShardedInputs
    """
    mesh = observation_mesh(devices)
    n_obs = int(np.asarray(response).shape[0])
    padded, y = pad_observations(arrays, response, len(devices))
    by_obs = NamedSharding(mesh, PartitionSpec(OBS_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())
    placed = {
        key: global_array(value, by_obs if key in (*OBS_ARRAYS, MASK_KEY) else replicated)
        for key, value in padded.items()
    }
    # float32 responses: Bernoulli.log_prob multiplies them with float logits.
    y_global = global_array(y, by_obs, dtype=np.float32)
    return ShardedInputs(
        arrays=placed,
        y=y_global,
        sizes={**sizes, "n_obs": int(y.shape[0])},
        n_obs=n_obs,
        mesh=mesh,
    )


def mesh_devices(available: list[Any], n: int) -> list[Any]:
    """Return the first ``n`` of the devices JAX sees; raise when there are fewer.

    Raises
    ------
    ValueError
        If fewer than ``n`` devices are available (with how to get more on the CPU).
    """
    if len(available) < n:
        platform = available[0].platform if available else "cpu"
        hint = (
            " (on the CPU force host devices before JAX starts: the CLI does it for --devices; "
            "from Python set XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{n} before importing jax)" if platform == "cpu" else ""
        )
        raise InputError(
            f"devices={n} asked for, but JAX sees {len(available)} {platform} device(s){hint}"
        )
    return list(available[:n])


def home_device(devices: list[Any]) -> Any:
    """Return the first of ``devices`` that this process owns (``devices[0]`` on one host)."""
    own = [d for d in devices if d.process_index == jax.process_index()]
    return own[0] if own else devices[0]


def unpad(values: Any, n_obs: int) -> Any:
    """Cut a pointwise array's trailing observation axis back to the real observations."""
    return values[..., :n_obs]


# Environment variables of a multi-host fit (one `bayesirt fit` per host; see README).
COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"  # JAX's own name: host:port of process 0
NUM_PROCESSES_ENV = "BAYESIRT_NUM_PROCESSES"
PROCESS_ID_ENV = "BAYESIRT_PROCESS_ID"


def initialize_distributed(environ: dict[str, str] | None = None) -> bool:
    """Join a multi-host run when the environment names one; call before JAX starts.

    ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0), ``BAYESIRT_NUM_PROCESSES`` and
    ``BAYESIRT_PROCESS_ID`` are passed to ``jax.distributed.initialize``; where only some
    are set, JAX fills the rest from the cluster (SLURM, Open MPI, Kubernetes). Afterwards
    ``jax.devices()`` lists every host's devices and ``--devices`` counts them all.

    Returns
    -------
    bool
        Whether a distributed run was initialised.

    Raises
    ------
    ValueError
        If a process count or id is not an integer.
    """
    env = os.environ if environ is None else environ
    if not any(env.get(key) for key in (COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV)):
        return False
    numbers = {}
    for key, arg in ((NUM_PROCESSES_ENV, "num_processes"), (PROCESS_ID_ENV, "process_id")):
        if env.get(key):
            try:
                numbers[arg] = int(env[key])
            except ValueError:
                raise InputError(f"{key} must be an integer, got {env[key]!r}") from None
    jax.distributed.initialize(coordinator_address=env.get(COORDINATOR_ENV) or None, **numbers)
    return True
