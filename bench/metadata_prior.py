"""Leave-models-out: does the metadata ability prior help predict models never seen in training?

For each split seed, 20% of the models (and all their responses) are held out; hier2pl is
fitted on the rest with and without ``--metadata``; every held-out response (their training
responses: known items of known benchmarks) is predicted with no label at all, the held-out
models described only by their metadata (``ModelInfo``: organisation, parameter count,
instruct flag, release date). Scored by log-loss, Brier and AUC; also the metadata fit with
the metadata withheld at prediction time (every field unknown), to separate what the
metadata says from what the fit changed.

Run:
  .venv/bin/python bench/metadata_prior.py --set small --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import numpy as np  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SETS = {"small": ROOT.parent / "shared/data/real-multibench-small",
        "dev": ROOT.parent / "shared/data/real-multibench"}
RESULTS = ROOT / "bench" / "results"


def auc(y: np.ndarray, p: np.ndarray) -> float:
    r = rankdata(p)
    n1 = y.sum()
    n0 = y.size - n1
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return {"log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q))),
            "brier": float(np.mean((p - y) ** 2)), "auc": auc(y, p)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=sorted(SETS), default="small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--frac", type=float, default=0.2)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--work", default="/tmp/bayesirt-metadata")
    args = ap.parse_args()

    import jax

    from bayesirt import data as bdata
    from bayesirt.inference import FitConfig, convergence_headline, fit
    from bayesirt.posteriors import flat_arrays, save
    from bayesirt.predictive import ModelInfo, PosteriorDraws, predict_pairs

    data = bdata.load(SETS[args.set])
    work = Path(args.work) / args.set
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        n_out = max(1, round(args.frac * data.n_train_models))
        out_ids = sorted(rng.choice(np.asarray(data.model_ids[: data.n_train_models]), n_out,
                                    replace=False).tolist())
        rest = bdata.without_models(data, out_ids)
        held = np.isin(np.asarray(data.model_ids, object)[data.model_idx], out_ids)
        pm = np.asarray(data.model_ids, object)[data.model_idx[held]]
        pi = np.asarray(data.item_ids, object)[data.item_idx[held]]
        y = data.response[held].astype(np.float64)
        infos = {}
        for m in out_ids:
            j = data.model_ids.index(m)
            infos[m] = ModelInfo(org=data.model_org[j], param_count=data.model_param_count[j],
                                 is_instruct=data.model_is_instruct[j],
                                 release_year=data.model_release_year[j])
        for metadata in (False, True):
            path = work / f"seed{seed}-{'meta' if metadata else 'plain'}.nc"
            t0 = time.time()
            res = fit(jax.random.key(seed), rest, FitConfig(
                chains=4, warmup=args.warmup, draws=args.draws, metadata=metadata,
                progress=False))
            wall = time.time() - t0
            head = convergence_headline(res.posterior, res.sample_stats, res.max_tree_depth,
                                        res.dims, res.coords, constants=res.constant_data)
            save(res, path)
            draws = PosteriorDraws.from_arrays(**flat_arrays(path, max_draws=1000))
            variants = {"metadata" if metadata else "plain": infos}
            if metadata:
                variants["metadata fit, metadata withheld"] = {}
            for name, new_models in variants.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    p = predict_pairs(draws, list(pm), list(pi), new_models=new_models)
                rows.append({"seed": seed, "variant": name, "n_models_out": n_out,
                             "n_responses": int(y.size), **scores(y, p),
                             "rhat_max": float(head["rhat_max"]),
                             "ess_bulk_min": float(head["ess_bulk_min"]),
                             "divergences": int(head["divergences"]),
                             "steps_per_draw": float(np.mean(res.sample_stats["n_steps"])),
                             "wall_s": wall})
                print(rows[-1], flush=True)
    (RESULTS / f"metadata_prior_{args.set}.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    lines = [
        f"# Metadata ability prior, leave-models-out on real-multibench"
        f"{'-small' if args.set == 'small' else ''} (bench/metadata_prior.py)\n",
        f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), python "
        f"{platform.python_version()}, no GPU. Per seed {round(args.frac * 100)}% of the models "
        f"held out entirely; hier2pl fitted on the rest (4 chains x {args.warmup} warm-up + "
        f"{args.draws} draws); every held-out response predicted with no label, the model "
        "known only by its metadata.\n",
        "| seed | variant | models out | responses | log-loss | Brier | AUC | fit R-hat max | "
        "bulk-ESS min | divergences | steps/draw |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['variant']} | {r['n_models_out']} | "
                     f"{r['n_responses']} | {r['log_loss']:.4f} | {r['brier']:.4f} | "
                     f"{r['auc']:.4f} | {r['rhat_max']:.4f} | {r['ess_bulk_min']:.0f} | "
                     f"{r['divergences']} | {r['steps_per_draw']:.1f} |")
    for name in dict.fromkeys(r["variant"] for r in rows):
        sel = [r for r in rows if r["variant"] == name]
        lines.append(f"| mean | {name} | | | {np.mean([r['log_loss'] for r in sel]):.4f} | "
                     f"{np.mean([r['brier'] for r in sel]):.4f} | "
                     f"{np.mean([r['auc'] for r in sel]):.4f} | | | | |")
    (RESULTS / f"metadata_prior_{args.set}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
