"""Accuracy of bayesirt.predictive on a real data set, scored exactly as in docs/peers.md.

For k = 0, 3, 10 the revealed labels are the files <data>/reveal/k{k}_revealed.csv; every
test pair is predicted and only the pairs NOT revealed are scored (log-loss with
probabilities clipped to [1e-7, 1 - 1e-7], ROC-AUC). Then adaptive labelling: at budgets of
2%, 5%, 10% of the test pairs, the top pairs of ``score_pairs`` (one shot, batch-aware) vs
random pairs (numpy default_rng(seed)) are revealed, and the log-loss on the remaining pairs
is compared; a plot goes to bench/results/.

Run:
  .venv/bin/python bench/predict_accuracy.py POSTERIOR.nc ../shared/data/real-multibench \
      --out bench/results/predict_accuracy_real-multibench.md
POSTERIOR is a flat artifact (bayesirt.predictive.save_flat) or a posterior DataTree file
(converted in memory, as `bayesirt predict` does). The data are parsed by bayesirt.data and
the engine's inputs (new items, evidence, neighbours) built by bayesirt.predictive.inputs,
the same as `bayesirt predict` and the submission bundle.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bayesirt import data as bdata  # noqa: E402
from bayesirt import pipeline  # noqa: E402
from bayesirt.predictive import inputs, predict_pairs, score_pairs  # noqa: E402


def read_csv(path: Path) -> dict[str, list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {k: [r[k] for r in rows] for k in (rows[0].keys() if rows else [])}


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def auc(y: np.ndarray, p: np.ndarray) -> float:
    r = rankdata(p)
    n1 = y.sum()
    n0 = y.size - n1
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def peers_table(set_name: str) -> list[list[str]]:
    text = (Path(__file__).resolve().parents[2] / "shared/docs/peers.md").read_text()
    m = re.search(rf"^## {re.escape(set_name)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        return []
    rows = []
    for line in m.group(1).splitlines():
        if line.startswith("|") and not line.startswith("|---") and "system" not in line:
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("posterior")
    ap.add_argument("data_dir")
    ap.add_argument("--out", default=None, help="markdown file for the results")
    ap.add_argument("--plot", default=None, help="png for the adaptive-vs-random curve")
    ap.add_argument("--budgets", type=float, nargs="*", default=[0.02, 0.05, 0.10])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--method", default="bald",
                    choices=["bald", "epig", "bald_nobatch", "epig_nobatch"])
    ap.add_argument("--methods", nargs="*", default=None,
                    help="several acquisition methods to compare (default: --method)")
    ap.add_argument("--skip-adaptive", action="store_true")
    ap.add_argument("--item-draws", type=int, default=32)
    ap.add_argument("--neighbours", type=int, default=0,
                    help="use the nearest-neighbour prior with this many neighbours (0: off)")
    ap.add_argument("--neighbour-abilities", action=argparse.BooleanOptionalAction,
                    default=True, help="with --neighbours: also the local ability offsets "
                    "from the training responses (as bayesirt predict)")
    ap.add_argument("--category-ability", action=argparse.BooleanOptionalAction,
                    default=True, help="with --neighbour-abilities: also the category ability "
                    "offsets (bayesirt.predictive.neighbours.CATEGORY_ABILITY)")
    ap.add_argument("--empirical-shape", action=argparse.BooleanOptionalAction, default=True,
                    help="new items' prior shaped as their category's fitted items "
                    "(bayesirt.predictive.shape.EMPIRICAL_SHAPE)")
    ap.add_argument("--note", default="", help="how the posterior was made (goes in --out)")
    args = ap.parse_args()
    from bayesirt.predictive import neighbours as neighbours_module

    neighbours_module.CATEGORY_ABILITY = args.category_ability
    from bayesirt.predictive import shape as shape_module

    shape_module.EMPIRICAL_SHAPE = args.empirical_shape
    data = Path(args.data_dir)
    set_name = data.name.replace("_", "-")
    draws = pipeline.load_draws(args.posterior)
    print(f"posterior: {draws.n_draws} draws, {len(draws.model_ids)} models, "
          f"{len(draws.item_ids)} items, model {draws.attrs.get('model_name', '?')}")
    parsed = bdata.load(data / "train", data / "test")
    models, items = inputs.test_pairs(parsed)
    truth = read_csv(data / "reference/ground_truth.csv")
    assert truth["model_id"] == models.tolist() and truth["item_id"] == items.tolist()
    y = np.asarray(truth["label"], dtype=np.int64)
    key = {(m, i): n for n, (m, i) in enumerate(zip(models, items, strict=True))}

    # New items, and the training responses the posterior lacks (a fit on a subset): evidence.
    new_items = inputs.new_items(draws, parsed)
    evidence = inputs.evidence(draws, parsed)
    if evidence is not None:
        print(f"evidence: {evidence[0].size} training responses the posterior lacks")

    nb_kw = {}
    if args.neighbours:
        # As bayesirt predict: item ids, embeddings and (--neighbour-abilities) responses.
        neighbours = inputs.neighbours(parsed)
        if neighbours is None:
            sys.exit(f"--neighbours needs {data / 'train/item_embeddings.npy'}")
        if not args.neighbour_abilities:
            neighbours = neighbours[:2]
        nb_kw = {"neighbours": neighbours, "n_neighbours": args.neighbours}

    def run(labels_idx: np.ndarray) -> tuple[float, float, float]:
        labels = (models[labels_idx], items[labels_idx], y[labels_idx]) if labels_idx.size \
            else None
        t0 = time.perf_counter()
        p = predict_pairs(draws, models, items, new_items=new_items, labels=labels,
                          evidence=evidence, item_draws=args.item_draws, **nb_kw)
        wall = time.perf_counter() - t0
        mask = np.ones(models.size, bool)
        mask[labels_idx] = False
        return log_loss(y[mask], p[mask]), auc(y[mask], p[mask]), wall

    results = {}
    for k in (0, 3, 10):
        rev = read_csv(data / f"reveal/k{k}_revealed.csv")
        idx = np.asarray([key[(m, i)] for m, i in zip(rev.get("model_id", []),
                                                      rev.get("item_id", []), strict=True)],
                         dtype=np.int64)
        results[k] = run(idx)
        print(f"k={k}: log-loss {results[k][0]:.4f} AUC {results[k][1]:.4f} "
              f"({idx.size} revealed, predict {results[k][2]:.1f} s)")

    lines = [f"# bayesirt.predictive on {set_name} (bench/predict_accuracy.py)", "",
             f"Posterior: `{args.posterior}` ({draws.n_draws} draws, model "
             f"{draws.attrs.get('model_name', '?')}); predictions by `predict_pairs` "
             f"(item_draws={args.item_draws}, neighbours={args.neighbours}, neighbour "
             f"abilities={args.neighbour_abilities and bool(args.neighbours)}, category "
             f"ability={args.category_ability}, empirical shape={args.empirical_shape}); "
             "scored on the "
             "unrevealed test pairs as in "
             "docs/peers.md.", *([args.note] if args.note else []), "",
             "| system | k=0 log-loss | k=0 AUC | k=3 log-loss | k=3 AUC | k=10 log-loss | "
             "k=10 AUC | predict s (k=10) |", "|---|---|---|---|---|---|---|---|"]
    ours = "| **bayesirt** | " + " | ".join(
        f"{results[k][0]:.4f} | {results[k][1]:.4f}" for k in (0, 3, 10)
    ) + f" | {results[10][2]:.1f} |"
    lines.append(ours)
    peers = peers_table(set_name)
    verdict = []
    for row in peers:
        lines.append("| " + " | ".join(row) + " |")
    if peers:
        for col, k in ((1, 0), (3, 3), (5, 10)):
            vals = [float(r[col]) for r in peers if r[col] not in ("—", "")]
            aucs = [float(r[col + 1]) for r in peers if r[col + 1] not in ("—", "")]
            verdict.append(
                f"k={k}: log-loss {results[k][0]:.4f} vs best peer {min(vals):.4f} "
                f"({'below every peer' if results[k][0] < min(vals) else 'NOT below every peer'})"
                f"; AUC {results[k][1]:.4f} vs best peer {max(aucs):.4f} "
                f"({'>=' if results[k][1] >= max(aucs) else '<'})")
    lines += [""] + [f"- {v}" for v in verdict]
    print("\n".join(verdict))

    if not args.skip_adaptive:
        methods = args.methods or [args.method]
        n = models.size
        curve: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
        curve["random"] = []
        base = results[0][0]
        for meth in methods:
            t0 = time.perf_counter()
            # "<method>_nobatch": the raw scores, to show what the batch-aware order buys.
            s = score_pairs(draws, models, items, new_items=new_items, evidence=evidence,
                            method=meth.split("_")[0], batch_aware=not meth.endswith("_nobatch"),
                            **nb_kw)
            t_score = time.perf_counter() - t0
            order = np.argsort(-s, kind="stable")
            for b in args.budgets:
                m = int(round(b * n))
                ll = run(order[:m])[0]
                curve[meth].append((b, ll))
                print(f"{meth} {b:.0%}: log-loss {ll:.4f} (score_pairs {t_score:.1f} s)")
        for b in args.budgets:
            m = int(round(b * n))
            lls = [run(np.random.default_rng(seed).choice(n, m, replace=False))[0]
                   for seed in args.seeds]
            curve["random"].append((b, float(np.mean(lls))))
            print(f"random {b:.0%}: log-loss {np.mean(lls):.4f} "
                  f"(seeds {args.seeds}: {', '.join(f'{v:.4f}' for v in lls)})")
        lines += ["", "## Adaptive labelling vs random (one shot, labels = top-scored pairs)", "",
                  f"Log-loss on the remaining test pairs; random = numpy default_rng(seed), "
                  f"seeds {args.seeds} (mean). 0%: {base:.4f}.", "",
                  "| budget | " + " | ".join(curve) + " |",
                  "|---|" + "---|" * len(curve)]
        for n_b, b in enumerate(args.budgets):
            lines.append(f"| {b:.0%} | " + " | ".join(f"{curve[c][n_b][1]:.4f}" for c in curve)
                         + " |")
        if args.plot:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(5, 3.5))
            for c, pts in curve.items():
                xs = [0.0] + [100 * b for b, _ in pts]
                ax.plot(xs, [base] + [v for _, v in pts], marker="o",
                        label=c if c == "random" else f"score_pairs ({c})")
            ax.set_xlabel("labels revealed (% of test pairs)")
            ax.set_ylabel("log-loss on remaining pairs")
            ax.set_title(f"{set_name}: adaptive vs random labels")
            ax.legend()
            fig.tight_layout()
            fig.savefig(args.plot, dpi=120)
            lines += ["", f"![adaptive vs random]({os.path.basename(args.plot)})"]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
