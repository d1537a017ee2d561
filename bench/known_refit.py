"""Labels on new items of KNOWN benchmarks: is re-weighting the draws enough? (issue 12, item 5)

The engine conditions a new item of a known benchmark on its labels within each draw and
re-weights the draws by the labels' evidence (so the labelled models' abilities move only as
far as the existing draws allow). The gold standard is a NUTS refit with the labels as data.

On real-multibench-small: fit A on the training responses; fit B on the training responses
PLUS the k = 10 revealed labels (reveal/k10_revealed.csv; their items become known items of
B). Both: hier2pl defaults (4 chains x 1500 + 1000, seed 0), no item embeddings (neither fit has
them, so the models agree). Then, on the test pairs NOT revealed, split by whether the pair's
item has revealed labels (of other models) or none:

* the engine: ``predict_pairs`` from A with the revealed labels;
* the refit: ``predict_pairs`` from B (known items: its posterior predictive; items without
  labels are new to B too);

mean |dp| between them, and each one's log-loss and Brier against the ground truth.

Run:
  .venv/bin/python bench/known_refit.py [--work /tmp/bayesirt-known]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SMALL = ROOT.parent / "shared/data/real-multibench-small"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, rows: list[dict], fields: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def make_folders(work: Path) -> tuple[Path, Path]:
    """Data folders A (training) and B (training + revealed k10), without embeddings."""
    out = []
    revealed = _rows(SMALL / "reveal" / "k10_revealed.csv")
    test_items = {r["item_id"]: r for r in _rows(SMALL / "test" / "test_items.csv")}
    for name, extra in (("A", []), ("B", revealed)):
        d = work / name / "train"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SMALL / "train" / "model_metadata.csv", d / "model_metadata.csv")
        resp = _rows(SMALL / "train" / "train_responses.csv") + extra
        _write(d / "train_responses.csv", resp, ["model_id", "item_id", "response"])
        items = _rows(SMALL / "train" / "train_items.csv")
        items += [test_items[i] for i in sorted({r["item_id"] for r in extra})]
        _write(d / "train_items.csv", items, ["item_id", "item_text", "benchmark", "category"])
        out.append(work / name)
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/bayesirt-known")
    ap.add_argument("--out", default=str(ROOT / "bench/results/known_refit_small.md"))
    args = ap.parse_args()
    import jax

    from bayesirt import data as bdata
    from bayesirt import pipeline
    from bayesirt.predictive import ItemInfo, predict_pairs

    work = Path(args.work)
    a_dir, b_dir = make_folders(work)
    fits = {}
    for name, d in (("A", a_dir), ("B", b_dir)):
        path = work / f"fit{name}.nc"
        t0 = time.time()
        res = pipeline.fit_and_save(jax.random.key(0), d, path, echo=print, model="hier2pl",
                                    chains=4, warmup=1500, draws=1000, progress=False, seed=0)
        h = res["headline"]
        fits[name] = (path, time.time() - t0,
                      f"R-hat max {h['rhat_max']:.4f}, bulk-ESS min {h['ess_bulk_min']:.0f}, "
                      f"{h['divergences']} divergences")
    gm, gi, gy = bdata.read_labeled_pairs(SMALL / "reference" / "ground_truth.csv")
    truth = dict(zip(zip(gm.tolist(), gi.tolist(), strict=True), gy.tolist(), strict=True))
    rev = _rows(SMALL / "reveal" / "k10_revealed.csv")
    rev_pairs = {(r["model_id"], r["item_id"]) for r in rev}
    rev_items = {r["item_id"] for r in rev}
    pm, pi = bdata.read_pairs(SMALL / "test" / "test_pairs.csv")
    keep = [k for k, key in enumerate(zip(pm.tolist(), pi.tolist(), strict=True))
            if key not in rev_pairs]
    pm, pi = pm[keep], pi[keep]
    y = np.asarray([truth[(m, i)] for m, i in zip(pm, pi, strict=True)], dtype=np.float64)
    test_items = {r["item_id"]: r for r in _rows(SMALL / "test" / "test_items.csv")}
    def cat(r):
        return f"{r['benchmark']}/{r['category']}" if r["category"] else None

    new_items = {i: ItemInfo(test_items[i]["benchmark"], cat(test_items[i]))
                 for i in set(pi.tolist()) | rev_items}
    labels = (np.asarray([r["model_id"] for r in rev], object),
              np.asarray([r["item_id"] for r in rev], object),
              np.asarray([int(r["response"]) for r in rev]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        draws_a = pipeline.load_draws(fits["A"][0], max_draws=1000)
        draws_b = pipeline.load_draws(fits["B"][0], max_draws=1000)
        p_eng = predict_pairs(draws_a, list(pm), list(pi), new_items=new_items, labels=labels)
        b_new = {i: v for i, v in new_items.items() if i not in set(draws_b.item_ids)}
        p_ref = predict_pairs(draws_b, list(pm), list(pi), new_items=b_new)

    def ll(p, on):
        q = np.clip(p[on], 1e-7, 1 - 1e-7)
        return float(-np.mean(y[on] * np.log(q) + (1 - y[on]) * np.log1p(-q)))

    has = np.asarray([i in rev_items for i in pi], bool)
    lines = ["# Labels on new items of known benchmarks: the engine vs a NUTS refit "
             "(bench/known_refit.py)", "",
             f"Machine: {os.cpu_count()} CPU cores ({platform.machine()}), python "
             f"{platform.python_version()}, no GPU. Fits: hier2pl, 4 chains x 1500 + 1000, "
             f"seed 0, no embeddings; A on the training responses ({fits['A'][1]:.0f} s; "
             f"{fits['A'][2]}), B on them plus the {len(rev)} k = 10 revealed labels "
             f"({fits['B'][1]:.0f} s; {fits['B'][2]}). "
             f"Scored: the {y.size} unrevealed test pairs.", "",
             "| test pairs | n | mean abs dp | engine log-loss | refit log-loss | "
             "engine Brier | refit Brier |", "|---|---|---|---|---|---|---|"]
    for label, on in (("item has revealed labels", has), ("item has none", ~has),
                      ("all", np.ones_like(has))):
        lines.append(f"| {label} | {int(on.sum())} | {np.mean(np.abs(p_eng - p_ref)[on]):.4f} | "
                     f"{ll(p_eng, on):.4f} | {ll(p_ref, on):.4f} | "
                     f"{np.mean((p_eng - y)[on] ** 2):.4f} | {np.mean((p_ref - y)[on] ** 2):.4f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
