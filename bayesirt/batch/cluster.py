"""The local Dask cluster of a batch: single-threaded JAX worker processes sharing the cores.

With ``N`` workers on ``C`` cores each worker gets ``k = max(1, C // N)`` XLA host devices
(chains run in parallel when ``k >= chains``, vectorised otherwise) and ``k``
OpenMP/BLAS threads. Those variables must be in a worker's environment *before its
interpreter starts*: distributed imports numpy (which reads ``OPENBLAS_NUM_THREADS`` once,
when it loads) while a worker process unpickles its start-up function, before the Nanny's
``env=`` is applied (measured: ``env={"OPENBLAS_NUM_THREADS": "2"}`` left OpenBLAS at 1
thread, Dask's pre-spawn default). So they are given as
``distributed.nanny.pre-spawn-environ`` and in this process's environment while the
workers spawn (the Nanny prefers this process's values over the config's, and puts them
into this process's environment again when it restarts a worker); :func:`local_cluster`
restores this process's values once the workers are up and when the cluster closes.
This is the one place outside ``cli.py`` that sets JAX's process settings, and only for
the worker processes it starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any


def available_cores() -> int:
    """Count the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_environment(n_workers: int, cores: int | None = None) -> dict[str, str]:
    """Environment of local worker processes so that ``n_workers`` share the cores.

    Parameters
    ----------
    n_workers : int
    cores : int, optional
        Cores to share (default: those this process may run on).

    Returns
    -------
    dict of str to str
        ``JAX_PLATFORMS=cpu``, ``XLA_FLAGS`` with ``k`` host devices (other XLA flags of
        this process kept) and ``OMP/OPENBLAS/MKL_NUM_THREADS=k``, ``k = max(1, cores //
        n_workers)``.
    """
    k = max(1, (cores or available_cores()) // max(1, n_workers))
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if "xla_force_host_platform_device_count" not in f]
    return {"JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": " ".join([*flags, f"--xla_force_host_platform_device_count={k}"]),
            "OMP_NUM_THREADS": str(k), "OPENBLAS_NUM_THREADS": str(k),
            "MKL_NUM_THREADS": str(k)}


@contextlib.contextmanager
def local_cluster(n_workers: int, *, retries: int = 0) -> Iterator[Any]:
    """Start a ``LocalCluster`` of ``n_workers`` single-threaded JAX worker processes.

    Parameters
    ----------
    n_workers : int
    retries : int, default 0
        How many times a fit whose worker died is run again on another worker (Dask's
        ``allowed_failures``); 0 records it as failed at once.

    Yields
    ------
    distributed.LocalCluster
        One thread per worker (one fit at a time; the runner hands out fits only as
        threads free up, so a killed worker takes down only the fit it runs).
    """
    import dask
    from distributed import LocalCluster

    env = worker_environment(n_workers)
    saved = {key: os.environ.get(key) for key in env}

    def restore() -> None:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # The Nanny takes pre-spawn values from os.environ before the config, so this process's
    # own XLA_FLAGS (e.g. the CLI's or a test's) would win over the config alone: set both.
    pre_spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ", default={}), **env}
    os.environ.update(env)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": pre_spawn}):
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR,
                                   scheduler_kwargs={"allowed_failures": retries}, env=env)
        restore()  # the workers have theirs; a worker restarted later sets them again
        try:
            yield cluster
        finally:
            cluster.close()
    finally:
        restore()
