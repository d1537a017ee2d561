"""Run a plan's fits on Dask: resumable, one fit's failure never stops the others.

By default the fits run on a local cluster of single-threaded JAX worker processes that
share the cores (:mod:`bayesirt.batch.cluster`); with ``scheduler=ADDRESS`` they run on an
existing cluster, whose workers must see the same file system (they write the outputs) and
have bayesirt installed; their environment (``XLA_FLAGS``, thread counts) is theirs to set.

Each fit writes ``OUT/<name>/posterior.nc`` and ``summary.json`` (both atomically), or
``failed.json`` with the error: an exception in the fit (bad data, a divergence storm), or
its worker process dying (killed, out of memory: Dask's ``KilledWorker``; on the local
cluster a dying worker's fit is not retried unless ``retries`` says so). A fit whose
``summary.json`` says ``ok`` for the same settings fingerprint is skipped, so running the
same plan again runs only the failed and missing fits.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayesirt.batch.cluster import available_cores, local_cluster, worker_environment
from bayesirt.batch.files import BATCH, FAILED, is_done, write_json
from bayesirt.batch.worker import one_line, run_fit
from bayesirt.errors import InputError


@dataclass
class BatchReport:
    """What a batch run did.

    Attributes
    ----------
    out : Path
        The output folder.
    records : list of dict
        Per fit, in plan order: ``name``, ``label``, ``status`` (``ok``, ``failed`` or
        ``skipped``), ``verdict`` or ``error``, ``wall_seconds``.
    where : str
        Where the fits ran (``None`` when everything was already done).
    wall_seconds : float
    """

    out: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    where: str | None = None
    wall_seconds: float = 0.0

    def count(self, status: str) -> int:
        """Count the fits with ``status``."""
        return sum(r["status"] == status for r in self.records)

    def text(self) -> str:
        """Say in one line what the run did."""
        return (f"{self.count('ok')} fitted, {self.count('skipped')} already done, "
                f"{self.count('failed')} failed in {self.wall_seconds:.0f} s; outputs in "
                f"{self.out}")


def _record(spec: Any, status: str, **extra: Any) -> dict[str, Any]:
    return {"name": spec.name, "label": spec.label, "seed": spec.config["seed"],
            "data": spec.data, "status": status, **extra}


def _collect(future: Any, spec: Any, out: Path) -> dict[str, Any]:
    """Record a finished future; a dead worker's fit gets its failed.json here."""
    if future.status == "finished":
        result = future.result()
        if result.get("status") == "ok":
            return _record(spec, "ok", verdict=result["verdict"],
                           wall_seconds=result["wall_seconds"])
        return _record(spec, "failed", error=result["error"],
                       wall_seconds=result.get("wall_seconds"))
    if future.status == "cancelled":
        error = "cancelled"
    else:
        exc = future.exception()
        if type(exc).__name__ == "KilledWorker":
            error = (f"the worker process running this fit died (killed or out of memory; "
                     f"Dask KilledWorker after {exc.allowed_failures + 1} attempt(s))")
        else:
            error = one_line(exc)
    write_json(out / spec.name / FAILED, {
        "status": "failed", "name": spec.name, "label": spec.label, "error": error,
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "spec": spec.to_dict()})
    return _record(spec, "failed", error=error)


def _running(client: Any, keys: set[str]) -> int:
    try:
        return sum(k in keys for tasks in client.processing().values() for k in tasks)
    except Exception:  # progress is best-effort; the scheduler may be restarting a worker
        return 0


def _slots(client: Any) -> int:
    """Worker threads of the cluster now (at least 1, so that a fit waits for a worker)."""
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # a scheduler hiccup: keep going one fit at a time
        return 1


def _run_all(client: Any, todo: list, out: Path, options: dict, records: dict,
             progress: bool, echo: Callable[[str], None], poll: float) -> None:
    """Run ``todo`` with at most one fit per worker thread in flight.

    Fits are handed to Dask only as threads free up, not all at once: Dask would otherwise
    assign several fits to one worker up front (small groups of tasks are not queued on
    the scheduler), and a worker that dies fails every fit assigned to it, not just the
    one it was running.
    """
    from tqdm.auto import tqdm

    queue, inflight = list(todo), {}
    bar = tqdm(total=len(todo), unit="fit", desc="batch", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    say = tqdm.write if progress else echo
    done = failed = 0
    try:
        while queue or inflight:
            slots = _slots(client)
            while queue and len(inflight) < slots:
                spec = queue.pop(0)
                key = f"bayesirt-fit-{spec.name}-{uuid.uuid4().hex[:8]}"
                inflight[client.submit(run_fit, spec.to_dict(), str(out), options, key=key,
                                       pure=False)] = spec
            for future in [f for f in inflight if f.done()]:
                spec = inflight.pop(future)
                record = _collect(future, spec, out)
                records[spec.name] = record
                done += record["status"] == "ok"
                failed += record["status"] == "failed"
                bar.update(1)
                say(f"{record['status']:6s} {spec.name}  "
                    f"{record.get('verdict') or record.get('error')}")
            running = _running(client, {f.key for f in inflight}) if inflight else 0
            bar.set_postfix_str(f"done {done}, running {running}, waiting "
                                f"{len(queue) + len(inflight) - running}, failed {failed}")
            if queue or inflight:
                time.sleep(poll)
    except BaseException:  # Ctrl-C: stop the fits in flight; written outputs stay valid
        client.cancel(list(inflight))
        raise
    finally:
        bar.close()


@contextlib.contextmanager
def _connect(workers: int | None, scheduler: str | None, retries: int,
             n_todo: int) -> Iterator[tuple[Any, str]]:
    from distributed import Client

    if scheduler:
        try:
            client = Client(scheduler, timeout="15s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({one_line(exc)})") \
                from None
        with client:
            n = len(client.scheduler_info().get("workers", {}))
            yield client, f"the cluster at {scheduler} ({n} workers)"
        return
    n = workers or max(1, min(n_todo, available_cores()))
    k = worker_environment(n)["OMP_NUM_THREADS"]
    with local_cluster(n, retries=retries) as cluster, Client(cluster) as client:
        yield client, (f"a local cluster of {n} worker process(es), {k} core(s) each "
                       f"({k} XLA host device(s), {k} BLAS thread(s))")


def run_batch(plan: Any, out: str | os.PathLike, *, workers: int | None = None,
              scheduler: str | None = None, retries: int = 0, progress: bool = True,
              echo: Callable[[str], None] = print, poll: float = 0.5) -> BatchReport:
    """Run every fit of ``plan`` that ``out`` does not hold yet.

    Parameters
    ----------
    plan : bayesirt.batch.plan.Plan
    out : path-like
        Output folder (created if missing); ``<out>/<fit name>/`` per fit and
        ``<out>/batch.json`` with this run's records.
    workers : int, optional
        Local worker processes (default: one per core, at most one per fit to run).
    scheduler : str, optional
        Address of an existing Dask scheduler (instead of a local cluster).
    retries : int, default 0
        Local cluster only: runs again of a fit whose worker died before it is failed.
    progress : bool, default True
        Show a progress bar over the fits (done, running, failed, elapsed, ETA).
    echo : callable, default print
        Where status lines go.
    poll : float, default 0.5
        Seconds between progress updates.

    Returns
    -------
    BatchReport

    Raises
    ------
    InputError
        Bad ``workers``/``retries``, both ``workers`` and ``scheduler``, an unusable output
        folder, or a scheduler that cannot be reached (all before any fit starts).
    """
    from bayesirt.outputs import prepare_output_folder

    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise InputError(f"--workers must be a positive number of processes, got {workers!r}")
    if workers is not None and scheduler:
        raise InputError("--workers and --scheduler exclude each other (an existing cluster "
                         "has its own workers)")
    if retries < 0:
        raise InputError(f"--retries must be >= 0, got {retries}")
    out = prepare_output_folder(out, what="batch output folder")
    t0 = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for spec in plan.fits:
        if is_done(out / spec.name, spec):
            records[spec.name] = _record(spec, "skipped")
        else:
            todo.append(spec)
    merged = f" ({plan.duplicates} listed twice, run once)" if plan.duplicates else ""
    echo(f"{len(plan.fits)} fits in {plan.path.name}{merged}: {len(plan.fits) - len(todo)} "
         f"already done, {len(todo)} to run")
    report = BatchReport(out=out)
    if todo:
        with _connect(workers, scheduler, retries, len(todo)) as (client, where):
            report.where = where
            echo(f"running on {where}")
            _run_all(client, todo, out, plan.options, records, progress, echo, poll)
    report.records = [records[spec.name] for spec in plan.fits]
    report.wall_seconds = round(time.perf_counter() - t0, 2)
    write_json(out / BATCH, {
        "plan": str(plan.path), "options": plan.options, "where": report.where,
        "wall_seconds": report.wall_seconds,
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "fits": report.records})
    return report
