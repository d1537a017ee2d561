"""Bundle size and train + predict time of the submission on real-multibench, numpy-only.

Builds the bundle from a full real-multibench posterior (default /tmp/bayesirt-bench/full.nc,
made by the lead), creates (or reuses) a virtualenv holding only numpy, scipy and pandas, and
runs ``bayesirt.submission.evaluate`` in it with a 10% label budget: model.train, then
labeling.score_pairs on all 87,668 test pairs (adaptive policy), then model.predict. Writes
bench/results/submission.md.

    .venv/bin/python bench/submission_bench.py [--posterior PATH] [--data DIR] [--draws N]
        [--python PATH] [--synthetic-if-missing] [--budget 0.10] [--policy adaptive]

``--synthetic-if-missing`` stands in a posterior of the right shape (empirical-logit 2PL
parameters jittered over 4 x 250 draws, no NUTS) when the real one does not exist yet, so the
size and timing can be measured before the fit; the metrics of such a run mean little.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POSTERIOR = Path("/tmp/bayesirt-bench/full.nc")
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real-multibench"
RESULTS = ROOT / "bench" / "results" / "submission.md"


def base_python() -> str:
    """The interpreter the project venv was made from (a venv of a venv would inherit it)."""
    return getattr(sys, "_base_executable", sys.executable)


def make_numpy_only_venv(folder: Path, python: str) -> Path:
    """Create a venv at ``folder`` with numpy, scipy and pandas only; return its python."""
    py = folder / "bin" / "python"
    if py.exists():
        return py
    subprocess.run([python, "-m", "venv", str(folder)], check=True)
    env = dict(os.environ, PIP_CACHE_DIR=str(folder / ".pip-cache"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy", "scipy", "pandas"],
                   check=True, env=env)
    return py


def synthetic_posterior(data_dir: Path, out: Path, *, chains: int = 4, draws: int = 250,
                        seed: int = 0) -> Path:
    """Save a posterior of the real shape (ids of data_dir) without running NUTS."""
    from bayesirt import data as bdata
    from bayesirt.inference.result import FitResult
    from bayesirt.posteriors import save

    d = bdata.load(data_dir / "train")
    rng = np.random.default_rng(seed)
    nm, nk, nj = d.n_train_models, d.n_benchmarks, d.n_train_items
    y = d.response.astype(np.float64)
    kb = d.item_benchmark[d.item_idx]

    def logit(p):
        return np.log(p) - np.log1p(-p)

    cell = d.model_idx.astype(np.int64) * nk + kb
    ability = logit((np.bincount(cell, y, nm * nk) + 1)
                    / (np.bincount(cell, minlength=nm * nk) + 2)).reshape(nm, nk)
    difficulty = -logit((np.bincount(d.item_idx, y, nj) + 1)
                        / (np.bincount(d.item_idx, minlength=nj) + 2))
    bench = d.item_benchmark[:nj]
    mu = np.array([difficulty[bench == k].mean() for k in range(nk)])
    sd = np.array([difficulty[bench == k].std() + 0.1 for k in range(nk)])
    shape = (chains, draws)

    def jit(x, s):
        return (x + s * rng.standard_normal((*shape, *np.shape(x)))).astype(np.float32)

    post = {"ability": jit(ability, 0.2), "difficulty": jit(difficulty, 0.2),
            "log_discrimination": jit(np.zeros(nj), 0.1), "mu_difficulty": jit(mu, 0.05),
            "sigma_difficulty": np.abs(jit(sd, 0.02)),
            "mu_log_discrimination": jit(np.zeros(nk), 0.02),
            "sigma_log_discrimination": np.abs(jit(np.full(nk, 0.3), 0.02)),
            "ability_pop_loc": jit(ability.mean(0), 0.05),
            "ability_pop_scale": np.abs(jit(ability.std(0) + 0.1, 0.02))}
    dims = {"ability": ("model", "benchmark"), "difficulty": ("item",),
            "log_discrimination": ("item",),
            **{k: ("benchmark",) for k in post if k not in ("ability", "difficulty",
                                                              "log_discrimination")}}
    stats = {"diverging": np.zeros(shape, bool), "n_steps": np.full(shape, 7),
             "tree_depth": np.full(shape, 3), "energy": rng.standard_normal(shape),
             "acceptance_rate": np.full(shape, 0.9), "step_size": np.full(shape, 0.1),
             "lp": rng.standard_normal(shape)}
    fit = FitResult(
        model_name="synthetic-2pl", posterior=post, dims=dims, sample_stats=stats,
        observed={"response": d.response},
        coords={"model": list(d.model_ids[:nm]), "item": list(d.item_ids[:nj]),
                "benchmark": list(d.benchmark_ids), "category": list(d.category_ids)},
        config={"model": "synthetic-2pl", "chains": chains, "draws": draws},
        provenance={"data_fingerprint": d.fingerprint, "fingerprint": d.fingerprint},
        max_tree_depth=10,
        constant_data={"model_idx": d.model_idx, "item_idx": d.item_idx,
                       "item_benchmark": d.item_benchmark[:nj],
                       "item_category": d.item_category[:nj],
                       "category_benchmark": d.category_benchmark},
        constant_dims={"model_idx": ("obs",), "item_idx": ("obs",), "item_benchmark": ("item",),
                       "item_category": ("item",), "category_benchmark": ("category",)},
    )
    return save(fit, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posterior", type=Path, default=DEFAULT_POSTERIOR)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--draws", type=int, default=None,
                    help="max draws kept in the bundle (default: the builder's 'auto')")
    ap.add_argument("--python", default=None,
                    help="interpreter of a numpy/scipy/pandas-only venv (default: make one)")
    ap.add_argument("--venv-dir", type=Path, default=Path("/tmp/bayesirt-bench/numpy-only-venv"))
    ap.add_argument("--budget", type=float, default=0.10)
    ap.add_argument("--policy", default="adaptive", choices=("adaptive", "random", "both"))
    ap.add_argument("--synthetic-if-missing", action="store_true")
    ap.add_argument("--time-limit", type=float, default=3600)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from bayesirt.submission import build_bundle, evaluate

    work = Path(tempfile.mkdtemp(prefix="bayesirt-subbench-"))
    posterior, synthetic = args.posterior, False
    if not posterior.is_file():
        if not args.synthetic_if_missing:
            print(f"posterior {posterior} does not exist (pass --synthetic-if-missing to "
                  "measure with a stand-in of the same shape)", file=sys.stderr)
            return 2
        print(f"{posterior} missing: building a synthetic stand-in posterior", file=sys.stderr)
        posterior, synthetic = synthetic_posterior(args.data, work / "synthetic.nc"), True

    draws = args.draws if args.draws is not None else "auto"
    t0 = time.perf_counter()
    # As `bayesirt bundle` by default: the neighbour prior and local ability offsets.
    info = build_bundle(posterior, work / "submission.zip", max_draws=draws,
                        predict_options={"neighbours": True})
    t_bundle = time.perf_counter() - t0
    print(f"bundle: {info.size_bytes / 1e6:.1f} MB ({info.n_draws} draws, artifact "
          f"{info.artifact_bytes / 1e6:.1f} MB) in {t_bundle:.1f} s", file=sys.stderr)

    python = args.python or str(make_numpy_only_venv(args.venv_dir, base_python()))
    check = subprocess.run(
        [python, "-I", "-c", "import importlib.util as u, numpy, scipy, pandas, sys;"
         "print(sys.version.split()[0], numpy.__version__, scipy.__version__, pandas.__version__,"
         "[m for m in ('jax','numpyro','arviz','xarray','netCDF4','h5py','bayesirt')"
         " if u.find_spec(m)])"], capture_output=True, text=True, check=True, cwd=work)
    venv_desc = check.stdout.strip()
    print(f"child interpreter: {python}: {venv_desc}", file=sys.stderr)

    t0 = time.perf_counter()
    rep = evaluate(info.path, args.data, budgets=(args.budget,), policy=args.policy,
                   python=python, time_limit=args.time_limit, verbose=True)
    t_eval = time.perf_counter() - t0
    print(rep.table(per_benchmark=False))

    lines = [
        "# Submission bundle: size and numpy-only train + predict time on real-multibench",
        "",
        f"Measured {datetime.now(UTC).isoformat(timespec='seconds')} by "
        "`bench/submission_bench.py`; machine: "
        f"{platform.machine()} with {os.cpu_count()} CPU cores (shared), "
        f"{platform.system()} {platform.release()}.",
        "",
        f"- posterior: `{posterior}`" + (" (SYNTHETIC stand-in of the real shape: the "
                                         "real fit was not available)" if synthetic else ""),
        f"- model {info.manifest['model_name']}, {info.n_draws} draws kept "
        f"(max_draws={draws}); acquisition {info.manifest['acquisition']}",
        f"- ZIP size: **{info.size_bytes / 1e6:.1f} MB** (artifact uncompressed "
        f"{info.artifact_bytes / 1e6:.1f} MB); built in {t_bundle:.1f} s",
        f"- child interpreter (numpy/scipy/pandas-only venv): python, numpy, scipy, pandas, "
        f"forbidden packages found = `{venv_desc}`",
        f"- test pairs: {rep.n_test_pairs:,}; policy {args.policy}, budget {args.budget:.0%}",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| model.train | {rep.train_seconds:.1f} |",
    ]
    for r in rep.runs:
        for k, v in r.timings.items():
            lines.append(f"| {k} ({r.policy}, {r.budget:.0%}) | {v:.1f} |")
    lines += [
        f"| child process total (imports + train + score + predict) | {rep.wall_seconds:.1f} |",
        f"| evaluate() total (incl. unzip, parsing, scoring) | {t_eval:.1f} |",
        "",
        "Metrics on the unrevealed pairs:",
        "",
        "```",
        rep.table(per_benchmark=False),
        "```",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
