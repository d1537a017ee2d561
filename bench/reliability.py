#!/usr/bin/env python
"""How reliable are bayesirt's ability scores? Test-retest, uneven coverage, contamination.

Scores: the posterior mean of the general ability ``theta`` (hier2pl, contamination option,
plain 2PL) against per-model accuracy (the mean of a model's training responses).

* **test-retest** — the items of every benchmark split into two random halves (seeded);
  each half fitted on its own; Kendall's tau between the two halves' scores, and the
  coverage of the 90% intervals (how often one half's posterior mean falls in the other
  half's central 90% interval; both directions averaged).
* **uneven coverage** — a random 30% of the models that answered >= 2 benchmarks lose 70% of
  their benchmarks (at least one kept), all their responses there dropped; tau between the
  scores on that data and the same method's scores on the full data (all models, and the
  affected ones only), and the mean absolute rank change of the affected models.
* **contamination** — the benchmark with the most models; a random quarter of its models;
  for each, a random 20% of its responses on that benchmark set to 1 ("leaked": forced
  correct whatever they were). The plain hier2pl and ``--contamination`` fitted on the
  inflated data; tau of their scores to the plain hier2pl's scores on the clean data
  (all models, and the inflated ones' ranks).
* **cost on clean data** — ``--contamination`` on the clean data: PSIS-LOO (ArviZ) against
  the plain fit, and held-out log-loss at k = 0 on the set's test pairs
  (``bayesirt.pipeline.predict``, which uses the clean part of the model).

Every fit's scores are cached under ``--work`` (``/tmp``), so a rerun only renders.

Usage::

    python bench/reliability.py --set small
    python bench/reliability.py --set dev --chains 2 --warmup 300 --draws 300 --parts retest uneven
    python bench/reliability.py --set small --parts retest --seed 0 --methods hier2pl+metadata
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SETS = {
    "small": ROOT.parent / "shared/data/real-multibench-small",
    "dev": ROOT.parent / "shared/data/real-multibench",
}
SCORES = ("theta", "mean_ability", "expected_accuracy")
METHODS = {  # name -> (registered model, FitConfig options)
    "hier2pl": ("hier2pl", {}),
    "hier2pl+contamination": ("hier2pl", {"contamination": True}),
    "2pl": ("2pl", {}),
    "hier2pl+metadata": ("hier2pl", {"metadata": True}),
    "hier2pl+outliers": ("hier2pl", {"outliers": True}),
    # The same with the regular cells' scale (bayesirt.models.factor.OUTLIER_REGULAR_SCALE).
    "hier2pl+outliers+scale": ("hier2pl", {"outliers": True}),
    # The loadings' tilt squared (bayesirt.models.population.UNIQUENESS_POWER = 2).
    "hier2pl+tilt2": ("hier2pl", {}),
}


_DEFAULTS: dict[str, float] = {}  # module constants as the code ships them, before patching


def load(which: str):
    from bayesirt import data as bdata

    return bdata.load(SETS[which] / "train")


def accuracy(data) -> dict[str, float]:
    """Per-model mean response, keyed by model id."""
    n = np.bincount(data.model_idx, minlength=data.n_train_models)
    s = np.bincount(data.model_idx, weights=data.response, minlength=data.n_train_models)
    return {data.model_ids[m]: float(s[m] / n[m]) for m in range(data.n_train_models) if n[m]}


def zscored_accuracy(data) -> dict[str, float]:
    """Per-benchmark accuracy standardised over the models observed on the benchmark, then
    averaged over the model's benchmarks: what hier2pl's per-benchmark standardisation does
    to accuracy, without any model."""
    bench_of_obs = data.item_benchmark[data.item_idx]
    cell = data.model_idx.astype(np.int64) * data.n_benchmarks + bench_of_obs
    size = data.n_train_models * data.n_benchmarks
    n = np.bincount(cell, minlength=size).reshape(data.n_train_models, -1)
    s = np.bincount(cell, weights=data.response, minlength=size).reshape(n.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(n > 0, s / n, np.nan)
    z = (acc - np.nanmean(acc, 0)) / np.nanstd(acc, 0)
    return {data.model_ids[m]: float(np.nanmean(z[m])) for m in range(data.n_train_models)
            if n[m].any()}


def with_responses(data, response: np.ndarray, source: str):
    """The same data with other responses (same shapes, ids and metadata)."""
    import dataclasses

    return dataclasses.replace(data, response=response.astype(np.int8), source=source,
                               fingerprint="")


def split_halves(data, seed: int):
    """Two ``IRTData``: each benchmark's items split into random halves."""
    from robustness import subset

    rng = np.random.default_rng(seed)
    nt = data.n_train_items
    half = np.zeros(nt, dtype=bool)
    for k in range(data.n_benchmarks):
        items = np.flatnonzero(data.item_benchmark[:nt] == k)
        half[rng.permutation(items)[: items.size // 2]] = True
    return (subset(data, items=np.flatnonzero(half), source="half A"),
            subset(data, items=np.flatnonzero(~half), source="half B"))


def uneven(data, seed: int, frac_models: float = 0.3, frac_drop: float = 0.7):
    """Drop ``frac_drop`` of the benchmarks of a random ``frac_models`` of the models."""
    from robustness import subset

    rng = np.random.default_rng(seed)
    bench_of_obs = data.item_benchmark[data.item_idx]
    taken = np.zeros((data.n_train_models, data.n_benchmarks), dtype=bool)
    taken[data.model_idx, bench_of_obs] = True
    eligible = np.flatnonzero(taken.sum(1) >= 2)
    chosen = rng.choice(eligible, size=max(1, round(frac_models * eligible.size)),
                        replace=False)
    keep = np.ones(data.n_obs, dtype=bool)
    for m in chosen:
        benches = np.flatnonzero(taken[m])
        n_drop = min(benches.size - 1, round(frac_drop * benches.size))
        drop = rng.choice(benches, size=n_drop, replace=False)
        keep &= ~((data.model_idx == m) & np.isin(bench_of_obs, drop))
    return subset(data, keep_obs=keep, source="uneven"), [data.model_ids[m] for m in chosen]


def contaminate(data, seed: int, frac_models: float = 0.25, frac_cells: float = 0.2):
    """Inflate ``frac_cells`` of the responses of ``frac_models`` of one benchmark's models."""
    rng = np.random.default_rng(seed)
    bench_of_obs = data.item_benchmark[data.item_idx]
    models_per_bench = [np.unique(data.model_idx[bench_of_obs == k]).size
                        for k in range(data.n_benchmarks)]
    k = int(np.argmax(models_per_bench))
    on_k = np.unique(data.model_idx[bench_of_obs == k])
    chosen = rng.choice(on_k, size=max(1, round(frac_models * on_k.size)), replace=False)
    response = data.response.copy()
    flipped = 0
    for m in chosen:
        rows = np.flatnonzero((data.model_idx == m) & (bench_of_obs == k))
        leak = rng.choice(rows, size=round(frac_cells * rows.size), replace=False)
        flipped += int((response[leak] == 0).sum())
        response[leak] = 1
    info = {"benchmark": data.benchmark_ids[k], "models": [data.model_ids[m] for m in chosen],
            "inflated_responses": int(sum(round(frac_cells * np.sum(
                (data.model_idx == m) & (bench_of_obs == k))) for m in chosen)),
            "flipped_0_to_1": flipped}
    return with_responses(data, response, "contaminated"), info


def fit_scores(tag: str, data, method: str, args, *, keep_posterior: bool = False,
               need_scores: bool = True) -> dict:
    """Fit (or load the cached result): convergence numbers and the path of saved draws.

    The draws kept (``theta``, ``ability``, ``difficulty``, ``log_discrimination``, at most
    1,000 evenly thinned) go to an ``.npz`` under ``--work``, so any score in
    :data:`SCORES` can be computed from them later without refitting.
    """
    work = Path(args.work)
    cache = work / f"{tag}.json"
    if cache.exists():
        rec = json.loads(cache.read_text())
        if not need_scores or Path(rec.get("draws", "/nonexistent")).exists():
            return rec
    import jax

    from bayesirt.inference import FitConfig, convergence_headline, fit

    model, options = METHODS[method]
    config = FitConfig(model=model, chains=args.chains, warmup=args.warmup, draws=args.draws,
                       seed=args.seed, progress=False, log_likelihood=keep_posterior,
                       **options)
    from bayesirt.models import factor

    factor.OUTLIER_REGULAR_SCALE = method == "hier2pl+outliers+scale"
    from bayesirt.models import population

    # The module's own default is kept for every other method (read once, before patching).
    _DEFAULTS.setdefault("uniqueness_power", population.UNIQUENESS_POWER)
    population.UNIQUENESS_POWER = (2.0 if method == "hier2pl+tilt2"
                                   else _DEFAULTS["uniqueness_power"])
    started = time.perf_counter()
    res = fit(jax.random.key(args.seed), data, config)
    wall = time.perf_counter() - started
    head = convergence_headline(res.posterior, res.sample_stats, res.max_tree_depth,
                                res.dims, res.coords, constants=res.constant_data)
    work.mkdir(parents=True, exist_ok=True)

    def thin(name, max_draws=1000):
        x = np.asarray(res.posterior[name], dtype=np.float32)
        x = x.reshape(-1, *x.shape[2:])
        return x[np.linspace(0, x.shape[0] - 1, min(max_draws, x.shape[0])).astype(int)]

    names = ["theta", "ability", "difficulty", "log_discrimination"] + [
        n for n in ("guess", "leak_probability", "rho", "outlier_probability",
                    "outlier_regular_scale")
        if n in res.posterior]
    draws_path = work / f"{tag}.npz"
    np.savez(draws_path, item_benchmark=data.item_benchmark[: data.n_train_items],
             **{n: thin(n) for n in names})
    out = {
        "tag": tag, "method": method, "wall_s": round(wall, 1),
        "settings": f"{args.chains} x ({args.warmup} + {args.draws}), seed {args.seed}",
        "models": list(res.coords["model"]), "benchmarks": list(res.coords["benchmark"]),
        "draws": str(draws_path),
        "rhat_max": float(head["rhat_max"]), "ess_bulk_min": float(head["ess_bulk_min"]),
        "divergences": int(head["divergences"]),
        "steps_per_draw": round(float(np.mean(res.sample_stats["n_steps"])), 1),
    }
    if "leak_probability" in res.posterior:
        out["leak_mean"] = thin("leak_probability").mean(0).tolist()
    if keep_posterior:
        from bayesirt.posteriors import save

        path = work / f"{tag}.nc"
        save(res, path)
        out["posterior"] = str(path)
    cache.write_text(json.dumps(out))
    print(f"  fitted {tag}: {wall:.0f} s, R-hat {out['rhat_max']:.4f}, "
          f"bulk-ESS {out['ess_bulk_min']:.0f}, {out['divergences']} divergences", flush=True)
    return out


def score_draws(rec: dict, score: str) -> np.ndarray:
    """Draws (S, models) of one score from a fit's saved draws.

    ``theta``: the general ability. ``mean_ability``: the mean of the model's abilities over
    all benchmarks (unobserved ones predicted through the general ability), each benchmark
    weighted equally. ``expected_accuracy``: mean P(correct) over each benchmark's items,
    benchmarks weighted equally (``bayesirt.abilities.expected``).
    """
    from bayesirt.abilities.expected import expected_accuracy

    d = np.load(rec["draws"])
    if score == "theta":
        return d["theta"].astype(np.float64)
    if score == "mean_ability":
        return d["ability"].astype(np.float64).mean(-1)
    guess = d["guess"] if "guess" in d.files else None
    return expected_accuracy(d["ability"], d["difficulty"], d["log_discrimination"],
                             d["item_benchmark"], guess)


def score_view(rec: dict, score: str) -> dict:
    """The record with ``mean``/``lo``/``hi`` (per model) of the chosen score."""
    x = score_draws(rec, score)
    return {**rec, "mean": x.mean(0).tolist(), "lo": np.quantile(x, 0.05, axis=0).tolist(),
            "hi": np.quantile(x, 0.95, axis=0).tolist()}


def scores(rec: dict) -> dict[str, float]:
    return dict(zip(rec["models"], rec["mean"], strict=True))


def tau(a: dict[str, float], b: dict[str, float], only: list[str] | None = None) -> float:
    keys = [k for k in a if k in b and (only is None or k in only)]
    return float(kendalltau([a[k] for k in keys], [b[k] for k in keys]).statistic)


def ranks(s: dict[str, float]) -> dict[str, int]:
    order = sorted(s, key=lambda k: -s[k])
    return {k: i + 1 for i, k in enumerate(order)}


def coverage(a: dict, b: dict) -> float:
    """How often one half's mean lies in the other's 90% interval (both directions)."""
    ia = {m: (lo, hi) for m, lo, hi in zip(a["models"], a["lo"], a["hi"], strict=True)}
    ib = {m: (lo, hi) for m, lo, hi in zip(b["models"], b["lo"], b["hi"], strict=True)}
    ma, mb = scores(a), scores(b)
    hits = [ib[m][0] <= ma[m] <= ib[m][1] for m in ma if m in ib]
    hits += [ia[m][0] <= mb[m] <= ia[m][1] for m in mb if m in ia]
    return float(np.mean(hits))


def part_retest(which, data, args) -> list[dict]:
    a, b = split_halves(data, args.seed)
    rows = [{"method": "accuracy", "tau": tau(accuracy(a), accuracy(b)), "coverage": None},
            {"method": "z-scored accuracy", "tau": tau(zscored_accuracy(a), zscored_accuracy(b)),
             "coverage": None}]
    for method in args.methods:
        ra = fit_scores(f"{which}-{method}-halfA-s{args.seed}", a, method, args)
        rb = fit_scores(f"{which}-{method}-halfB-s{args.seed}", b, method, args)
        for score in SCORES:
            va, vb = score_view(ra, score), score_view(rb, score)
            rows.append({"method": f"{method} {score}", "tau": tau(scores(va), scores(vb)),
                         "coverage": coverage(va, vb), "fits": [ra["tag"], rb["tag"]],
                         "rhat_max": max(ra["rhat_max"], rb["rhat_max"])})
    return rows


def part_uneven(which, data, args) -> list[dict]:
    thin, affected = uneven(data, args.seed)
    rows = []

    def row(method, full, part):
        rf, rp = ranks(full), ranks(part)
        change = [abs(rf[m] - rp[m]) for m in affected if m in rp]
        return {"method": method, "tau_all": tau(full, part),
                "tau_affected": tau(full, part, affected),
                "mean_rank_change_affected": float(np.mean(change)),
                "n_affected": len(affected), "n_models": len(full)}

    rows.append(row("accuracy", accuracy(data), accuracy(thin)))
    for method in ("hier2pl", "2pl"):
        full = fit_scores(f"{which}-{method}-full-s{args.seed}", data, method, args)
        part = fit_scores(f"{which}-{method}-uneven-s{args.seed}", thin, method, args)
        for score in SCORES:
            rows.append(row(f"{method} {score}", scores(score_view(full, score)),
                            scores(score_view(part, score))))
    return rows


def part_contam(which, data, args) -> list[dict]:
    dirty, info = contaminate(data, args.seed)
    clean_rec = fit_scores(f"{which}-hier2pl-full-s{args.seed}", data, "hier2pl", args)
    rows = [{"method": "accuracy", "tau_all": tau(accuracy(data), accuracy(dirty)),
             "mean_rank_gain_inflated": _rank_gain(accuracy(data), accuracy(dirty), info)}]
    for method, score in itertools.product(("hier2pl", "hier2pl+contamination"), SCORES):
        clean = scores(score_view(clean_rec, score))
        rec = fit_scores(f"{which}-{method}-contam-s{args.seed}", dirty, method, args)
        s = scores(score_view(rec, score))
        row = {"method": f"{method} {score}", "tau_all": tau(clean, s),
               "tau_clean_models": tau(clean, s, [m for m in s if m not in info["models"]]),
               "mean_rank_gain_inflated": _rank_gain(clean, s, info),
               "rhat_max": rec["rhat_max"], "divergences": rec["divergences"]}
        if "leak_mean" in rec:
            k = rec["benchmarks"].index(info["benchmark"])
            leak = np.asarray(rec["leak_mean"])[:, k]
            inflated = np.isin(rec["models"], info["models"])
            on_k = leak > 0
            row["leak_mean_inflated"] = float(leak[inflated].mean())
            row["leak_mean_other"] = float(leak[on_k & ~inflated].mean())
        rows.append(row)
    return [{"info": info}] + rows


def _rank_gain(clean: dict, dirty: dict, info: dict) -> float:
    """Mean number of places the inflated models climbed (positive = inflated)."""
    rc, rd = ranks(clean), ranks(dirty)
    return float(np.mean([rc[m] - rd[m] for m in info["models"] if m in rd]))


def part_cost(which, data, args) -> list[dict]:
    from arviz_stats import loo

    from bayesirt import pipeline
    from bayesirt.posteriors import load as load_posterior

    truth_path = SETS[which] / "reference/ground_truth.csv"
    import pandas as pd

    truth = pd.read_csv(truth_path)
    rows = []
    for method in ("hier2pl", "hier2pl+contamination"):
        rec = fit_scores(f"{which}-{method}-clean-ll-s{args.seed}", data, method, args,
                         keep_posterior=True, need_scores=False)
        tree = load_posterior(rec["posterior"], lazy_log_likelihood=False)
        res = loo(tree)
        pred = pipeline.predict(rec["posterior"], SETS[which] / "test")
        p = pd.DataFrame({"model_id": pred["model_id"], "item_id": pred["item_id"],
                          "p": pred["predicted_probability"]})
        merged = truth.merge(p, on=["model_id", "item_id"], validate="one_to_one")
        y, q = merged["label"].to_numpy(), np.clip(merged["p"].to_numpy(), 1e-12, 1 - 1e-12)
        rows.append({"method": method, "elpd_loo": float(res.elpd), "se": float(res.se),
                     "p_loo": float(res.p), "heldout_log_loss":
                     float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q))),
                     "rhat_max": rec["rhat_max"], "divergences": rec["divergences"]})
    return rows


def read_records(paths: list[str]) -> list[dict]:
    """Every JSON line of these record files, in order."""
    return [json.loads(line) for path in paths
            for line in Path(path).read_text().splitlines() if line.strip()]


def _f(x, nd=3):
    return "—" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def render(records: list[dict]) -> str:
    """Markdown tables of the records: one per (set, part), methods x seeds, with the mean."""
    out = []
    columns = {
        "retest": ("tau", "coverage"),
        "uneven": ("tau_all", "tau_affected", "mean_rank_change_affected"),
        "contam": ("tau_all", "tau_clean_models", "mean_rank_gain_inflated",
                   "leak_mean_inflated", "leak_mean_other"),
        "cost": ("elpd_loo", "se", "p_loo", "heldout_log_loss", "rhat_max"),
    }
    for (set_name, part) in dict.fromkeys((r["set"], r["part"]) for r in records):
        recs = [r for r in records if r["set"] == set_name and r["part"] == part]
        seeds = [r["seed"] for r in recs]
        cols = columns[part]
        out += [f"### {set_name}: {part} ({recs[0]['settings']} per fit; seeds "
                f"{', '.join(map(str, seeds))}; {recs[0]['machine']})", ""]
        for r in recs:
            info = next((row["info"] for row in r["rows"] if "info" in row), None)
            if info:
                out.append(f"- seed {r['seed']}: {info['benchmark']}, "
                           f"{len(info['models'])} models, {info['inflated_responses']} "
                           f"responses forced to 1 ({info['flipped_0_to_1']} were 0)")
        if any("info" in row for r in recs for row in r["rows"]):
            out.append("")
        head = ["method"] + [f"{c} (mean over seeds)" for c in cols] + (
            [f"{cols[0]} seed {s}" for s in seeds] if len(seeds) > 1 else [])
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        methods = [row["method"] for row in recs[0]["rows"] if "method" in row]
        for method in methods:
            per_seed = [next(row for row in r["rows"] if row.get("method") == method)
                        for r in recs]
            means = []
            for c in cols:
                vals = [row.get(c) for row in per_seed if row.get(c) is not None]
                means.append(float(np.mean(vals)) if vals else None)
            cells = [method] + [_f(m, 1 if c in ("elpd_loo", "se", "p_loo") else 3)
                                for m, c in zip(means, cols, strict=True)]
            if len(seeds) > 1:
                cells += [_f(row.get(cols[0])) for row in per_seed]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


PARTS = {"retest": part_retest, "uneven": part_uneven, "contam": part_contam,
         "cost": part_cost}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=sorted(SETS), default="small")
    ap.add_argument("--parts", nargs="*", choices=sorted(PARTS), default=sorted(PARTS))
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1500)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", nargs="*", choices=sorted(METHODS), default=["hier2pl", "2pl"],
                    help="the fitted methods of the retest part")
    ap.add_argument("--work", default="/tmp/bayesirt-reliability")
    ap.add_argument("--out", default=str(ROOT / "bench/results/reliability.jsonl"))
    ap.add_argument("--render", nargs="*", metavar="JSONL",
                    help="only print the markdown tables of these record files")
    args = ap.parse_args()
    if args.render is not None:
        print(render(read_records(args.render)))
        return 0
    args.work = str(Path(args.work) / f"{args.chains}x{args.warmup}+{args.draws}")
    data = load(args.set)
    for part in args.parts:
        print(f"{args.set}: {part}", flush=True)
        started = time.perf_counter()
        rows = PARTS[part](args.set, data, args)
        rec = {"set": args.set, "part": part, "seed": args.seed,
               "settings": f"{args.chains} x ({args.warmup} + {args.draws})",
               "date": time.strftime("%Y-%m-%d %H:%M"),
               "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}",
               "wall_s": round(time.perf_counter() - started, 1), "rows": rows}
        with open(args.out, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
