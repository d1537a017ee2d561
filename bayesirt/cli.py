"""Command line: argument parsing, error reporting, and nothing else.

Each subcommand's arguments are defined here; its handler in :mod:`bayesirt.commands` sets
what must be set before JAX starts, turns ``--seed`` into a key, and calls one function of
the package (mostly :mod:`bayesirt.pipeline`).
Errors a user can fix (:class:`bayesirt.errors.InputError`: bad files, values, options; and
``OSError``: missing files, unwritable paths) print one line naming the path or value and exit
with status 2; ``--strict`` failures exit with status 1; anything else is a bug and is shown as
one (traceback, exit status 70). Warnings print as one line each. Every output path is checked
before the work starts, and missing output folders are created, for every command alike.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings

from bayesirt import commands

EXAMPLES = """\
examples:
  bayesirt info  data/                        summarise a data set (train/ test/ layout)
  bayesirt fit   data/ --out posterior.nc     fit hier2pl by NUTS (4 chains x 2000 draws)
  bayesirt diagnose posterior.nc --out report.html --test-dir data/test
  bayesirt abilities posterior.nc --out abilities.csv --plot abilities.png
  bayesirt predict  posterior.nc data/test --out predictions.csv
  bayesirt acquire  posterior.nc data/test --budget 500 --out pairs.csv
  bayesirt bundle   posterior.nc --out submission.zip
  bayesirt evaluate submission.zip data/      judge the ZIP as the competition would
  bayesirt heldout data/ --out lobo/          leave-one-benchmark-out learning curves (ALC)
  bayesirt demo                               all of the above on the bundled data set
  bayesirt batch plan.toml --out runs/        a grid of fits on a local Dask cluster
  bayesirt compare runs/                      PSIS-LOO, held-out metrics, seeds: one page
"""

class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show "(default: X)" except where the default is None (the help text then says it)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def _parse_budgets(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--budgets must be comma-separated fractions like 0,0.02,0.05, got {text!r}"
        ) from None
    if not values or any(not 0 <= v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"budgets must be fractions in [0, 1), got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """Build the ``bayesirt`` argument parser (exposed for tests and docs)."""
    from bayesirt import __version__

    parser = argparse.ArgumentParser(
        prog="bayesirt",
        description=(
            "Hierarchical Bayesian IRT for AI evaluation: fit by NUTS, diagnose, predict "
            "P(correct) for models on NEW items, pick what to label next, and package a "
            "competition submission."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bayesirt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=description,
            formatter_class=_DefaultsHelpFormatter,
        )

    p = add("info", "summarise a data set", "Print models, items, benchmarks, density, base "
            "rates and test pairs of a data set: a folder with train/ (and test/), a train "
            "dir, or one long-form CSV/Parquet file of model_id,item_id,response[,benchmark].")
    p.add_argument("data", help="data root, train dir, or long-form CSV/Parquet file")
    p.add_argument("--test-dir", help="test dir (default: test/ beside train/ when present)")
    p.set_defaults(func=commands.cmd_info)

    def add_fit_options(p: argparse.ArgumentParser, *, draws: int | None, warmup: int) -> None:
        from bayesirt.models import MODELS

        p.add_argument("--model", default="hier2pl", choices=sorted(MODELS),
                       help="model: " + "; ".join(f"{k}: {v.description}"
                                                  for k, v in sorted(MODELS.items())))
        p.add_argument("--chains", type=int, default=4, help="number of chains")
        p.add_argument("--warmup", type=int, default=warmup, help="warm-up iterations per chain")
        p.add_argument("--draws", type=int, default=draws,
                       help="kept draws per chain" if draws else
                       "kept draws per chain (default: the model's, 2000 for hier2pl, whose "
                       "slopes' common spread mixes slowly; 1000 for the others)")
        p.add_argument("--seed", type=int, default=0, help="seed; same seed + device = same draws")
        p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"),
                       help="auto uses the GPU when JAX sees one")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = add("fit", "fit a model by NUTS and save the posterior NetCDF",
            "Fit an IRT model by NUTS (NumPyro) and write the posterior as one NetCDF file "
            "(ArviZ DataTree). Prints R-hat, ESS, divergences and tree-depth hits at the end.")
    p.add_argument("data", help="data root (with train/), train dir, or long-form file")
    p.add_argument("--out", required=True, help="posterior file to write (.nc)")
    add_fit_options(p, draws=None, warmup=1500)
    p.add_argument("--max-tree-depth", type=int, default=10, help="NUTS tree-depth limit")
    p.add_argument("--devices", type=int, default=1, metavar="N",
                   help="shard the likelihood's observations over N devices of --device's "
                        "platform (GPUs, or host devices forced on the CPU; with several "
                        "hosts, all of their devices after jax.distributed.initialize); "
                        "chains are then vectorised")
    p.add_argument("--target-accept", type=float, default=None,
                   help="NUTS's target acceptance rate (default: the model's, 0.99 for hier2pl, "
                        "whose scattered divergences at 0.8 went away at 0.99 in "
                        "bench/results/robustness_steps.md; 0.8 for the others)")
    p.add_argument("--mass-matrix", choices=("diagonal", "block"), default="diagonal",
                   help="NUTS metric: diagonal, or a dense block over the benchmark- and "
                        "category-level hyperparameters and the population of benchmarks "
                        "(diagonal elsewhere); see bench/results/sampler_levers.md and "
                        "robustness_slopes.md")
    p.add_argument("--guess", action="store_true",
                   help="hier2pl: add a per-benchmark lower asymptote (guessing floor)")
    p.add_argument("--contamination", action="store_true",
                   help="hier2pl: let each (model, benchmark) cell's responses be leaked "
                        "(forced correct) with its own probability, so successes on items "
                        "far above a model's level stop inflating its ability (for ability "
                        "scores; predictions of new items use the clean part)")
    p.add_argument("--outliers", action="store_true",
                   help="hier2pl: let a (model, benchmark) cell's ability be an outlier, "
                        "unrelated to the model's general ability (a model that fails one "
                        "benchmark's answer format, a specialist); the outlier indicators "
                        "are summed out exactly (at most 12 benchmarks)")
    p.add_argument("--metadata", action="store_true",
                   help="hier2pl: each model's general ability gets a prior mean from its "
                        "metadata (log parameter count, instruct flag, release date, each "
                        "with a missingness indicator, and a partially pooled organisation "
                        "effect), so a model unseen in training gets an informed prior")
    p.add_argument("--embedding-components", type=int, default=0, metavar="P",
                   help="hier2pl: regress difficulty on P PCA components of item embeddings")
    p.add_argument("--parameterisation", default="auto",
                   choices=("auto", "centred", "noncentred"),
                   help="hier2pl: how item/category parameters are sampled; auto centres them "
                        "where the data pin them down (difficulties of items with >= 5 "
                        "responses in their rarer class in benchmarks of >= 500 items, "
                        "categories with >= 20 items; item slopes never). Changes mixing, "
                        "not the model")
    p.add_argument("--log-likelihood", action="store_true",
                   help="store pointwise log-likelihood (for LOO; chains x draws x obs floats)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 unless R-hat <= 1.01, ESS >= 400 and no divergences")
    p.set_defaults(func=commands.cmd_fit)

    p = add("diagnose", "write the HTML diagnostic report of a posterior",
            "Convergence (R-hat, ESS, MCSE, divergences, BFMI, trace/rank plots), posterior "
            "predictive checks, abilities, PSIS-LOO and, with --test-dir, held-out metrics: "
            "one self-contained HTML file.")
    p.add_argument("posterior", help="posterior NetCDF written by `bayesirt fit`")
    p.add_argument("--out", required=True, help="HTML report to write")
    p.add_argument("--json", help="also write the headline numbers as JSON")
    p.add_argument("--test-dir", help="test dir with ../reference/ground_truth.csv")
    p.add_argument("--strict", action="store_true", help="exit 1 when a threshold fails")
    p.add_argument("--rhat-max", type=float, default=1.01)
    p.add_argument("--ess-min", type=float, default=400)
    p.add_argument("--bfmi-min", type=float, default=0.3)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=commands.cmd_diagnose)

    p = add("abilities", "rank the models: ability scores with intervals (CSV)",
            "Ability of every model from a posterior: posterior mean, sd and central "
            "interval, the responses it rests on, its rank (1 = best) with the interval of "
            "the rank over the draws, and P(in the top k). The general ability by default; "
            "--by-benchmark gives one row per (model, benchmark), ranked within each "
            "benchmark, where observed = False marks abilities PREDICTED through the "
            "general ability (no responses on that benchmark). Prints the top 5.")
    p.add_argument("posterior", help="posterior NetCDF written by `bayesirt fit`")
    p.add_argument("--out", required=True, help="CSV to write")
    p.add_argument("--by-benchmark", action="store_true",
                   help="one row per (model, benchmark) instead of one per model")
    p.add_argument("--format", default="table", choices=("table", "track2"),
                   help="table: every column; track2: the competition's track2_scores.csv "
                        "(model_id,ability_score = posterior mean of the general ability)")
    p.add_argument("--top-k", type=int, default=10, metavar="K",
                   help="the p_top<K> column: fraction of draws with the model in the top K")
    p.add_argument("--interval", type=float, default=0.9,
                   help="mass of the central intervals (ability and rank)")
    p.add_argument("--json", metavar="PATH",
                   help="also write the rows as JSON records with the posterior's provenance "
                        "(model, data fingerprint, file)")
    p.add_argument("--plot", metavar="PATH",
                   help="also draw the ranked forest of the general ability (PNG)")
    p.set_defaults(func=commands.cmd_abilities)

    def add_predict_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("posterior", help="posterior NetCDF (or flat artifact)")
        p.add_argument("test_dir", help="dir with test_pairs.csv and test_items.csv")
        p.add_argument("--train-dir", help="train dir (default: train/ beside the test dir)")
        p.add_argument("--labeled", help="CSV of revealed labels: model_id,item_id,label")
        p.add_argument("--out", required=True, help="CSV to write")
        p.add_argument("--no-progress", action="store_true")

    neighbours_help = (
        "refine new items' difficulty prior by their 20 most similar training items, and "
        "give each model a local ability offset from its residuals on them (embedding "
        "cosine; strengths fitted leave-one-out on training items: empirical Bayes). "
        "Measured on real-multibench at k=0: the difficulty prior took log-loss 0.5452 -> "
        "0.5333, the ability offsets 0.5332 -> 0.5301 (AUC 0.8042 -> 0.8070)"
    )

    p = add("predict", "predict P(correct) for the test pairs",
            "Posterior predictive probabilities for every test pair: new items are integrated "
            "over their benchmark prior within each draw; revealed labels condition exactly.")
    add_predict_options(p)
    p.add_argument("--neighbours", action=argparse.BooleanOptionalAction, default=True,
                   help=neighbours_help + " (on when the data has embeddings)")
    p.set_defaults(func=commands.cmd_predict)

    p = add("acquire", "rank test pairs to label next (mutual information)",
            "Score test pairs by posterior mutual information (BALD) or expected information "
            "about the other test pairs (EPIG), spread over items, and write the top N.")
    add_predict_options(p)
    p.add_argument("--budget", type=int, required=True, help="number of pairs to choose")
    p.add_argument("--method", default="bald", choices=("bald", "epig"))
    p.add_argument("--neighbours", action="store_true", help=neighbours_help)
    p.set_defaults(func=commands.cmd_acquire)

    p = add("bundle", "package a competition submission ZIP",
            "Write model.py, labeling.py, the numpy-only runtime and the thinned posterior "
            "(NetCDF3) into a ZIP that runs without JAX. --protocol batch (default): the "
            "seed's train / predict(train_dir, test_dir, labeled_pairs) / score_pairs. "
            "--protocol streaming: the live platform's predict(input, labeled) -> float and "
            "acquisition_function(input, labeled, context) -> bool, numpy + scipy only "
            "(check it with `bayesirt evaluate ZIP DATA --protocol streaming`).")
    p.add_argument("posterior", help="posterior NetCDF written by `bayesirt fit`")
    p.add_argument("--out", required=True, help="ZIP to write")
    p.add_argument("--draws", type=int, default=0, help="draws kept (0: automatic)")
    p.add_argument("--protocol", default="batch", choices=("batch", "streaming"),
                   help="which platform interface the ZIP serves")
    p.add_argument("--acquisition", default=None, choices=("bald", "epig", "random"),
                   help="batch: score_pairs' method (bald, default; epig). streaming: the "
                        "hook's policy (random, default: the platform's own rule; bald)")
    p.add_argument("--neighbours", action=argparse.BooleanOptionalAction, default=True,
                   help="predictions in the ZIP use the neighbour difficulty prior, as "
                        "`bayesirt predict` does (built from train_dir's embeddings)")
    p.add_argument("--strict", action="store_true",
                   help="refuse a posterior that fails the convergence checks (R-hat, ESS, "
                        "divergences); without it such a posterior is bundled with a warning")
    p.set_defaults(func=commands.cmd_bundle)

    p = add("evaluate", "judge a submission ZIP locally, as the platform would",
            "--protocol batch (default): unzip safely, run train / score_pairs / predict in a "
            "subprocess under a time limit, reveal labels at each budget, and score the "
            "unrevealed pairs beside three baselines. --protocol streaming: replay the live "
            "platform leave-one-benchmark-out (the ZIP's posterior must not know the held-out "
            "benchmark): runs of up to --pairs (subject, benchmark) pairs with >= 80 items, "
            "each pair's items split 50/50, checkpoints at 0, 1, 3, 7, 15, 31 labels per pair "
            "with one shared label list, predict(input, labeled) in fresh worker processes "
            "at every checkpoint, labels bought through the ZIP's acquisition_function (or "
            "the platform's random rule); Brier per budget, ALC and ECE beside the "
            "organisers' empirical mean and a smoothed mean. Exit codes of a failing "
            "submission: 40 raised, 41 timed out, 42 invalid value.")
    p.add_argument("submission", help="submission ZIP")
    p.add_argument("data", help="data root with train/, test/ and reference/ground_truth.csv")
    p.add_argument("--budgets", type=_parse_budgets, default=(0.0, 0.02, 0.05, 0.10),
                   help="label budgets as fractions of test pairs")
    p.add_argument("--policy", default="both", choices=("adaptive", "random", "both"))
    p.add_argument("--python", help="interpreter to run the submission with")
    p.add_argument("--time-limit", type=float, default=3600, help="seconds for train+predict")
    p.add_argument("--json", help="write the metrics as JSON (streaming: ALC and Brier per "
                                  "budget per held-out benchmark, timings, every record)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    p.add_argument("--protocol", default="batch", choices=("batch", "streaming"),
                   help="which platform to replay (the ZIP must serve it)")
    p.add_argument("--holdout-benchmarks", nargs="+",
                   help="streaming: benchmarks to hold out (default: every benchmark the "
                        "ZIP's posterior was not fitted on)")
    p.add_argument("--pairs", type=int, default=12,
                   help="streaming: (subject, benchmark) pairs per run (the platform: 5-12)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="streaming: one run per seed (pairs drawn, split, candidate order)")
    p.add_argument("--split-scope", nargs="+", default=["pair"], choices=("pair", "item"),
                   help="streaming: split each pair's items (pair) or the benchmark's (item)")
    p.add_argument("--workers", type=int, default=2,
                   help="streaming: evaluation processes started at once per checkpoint")
    p.add_argument("--per-call-timeout", type=float, default=30.0,
                   help="streaming: seconds one predict / hook call may take (exit 41)")
    p.add_argument("--out", help="streaming: folder for streaming.md, the plot and records "
                                 "(default: ./streaming-eval)")
    p.add_argument("--sandbox", default="auto", choices=("auto", "require", "off"),
                   help="confine the submission with bubblewrap (read-only system, no "
                        "network, writable temp dir only): auto uses it when it works and "
                        "says so when not, require refuses to run without it, off")
    p.set_defaults(func=commands.cmd_evaluate)

    p = add("heldout", "leave-one-benchmark-out: predict benchmarks the posterior never saw",
            "For each benchmark in turn: fit on the others (fits are kept in OUT/fits/ and "
            "reused when their data match), split every (model, benchmark) pair with >= "
            "--min-items items 50/50 into an acquisition and a scored half (per pair, or per "
            "benchmark item), reveal 0, 1, 3, 7, 15, 31 random labels per pair (one shared "
            "label list, as the organisers' streaming platform does), and score the scored "
            "half: Brier and log-loss per budget, ALC, beside the organisers' empirical mean "
            "and a smoothed mean. Writes OUT/heldout.md, OUT/learning_curves.png and "
            "OUT/records.jsonl.")
    p.add_argument("data", help="data root with train/ (reference/ground_truth.csv is used "
                                "when present)")
    p.add_argument("--out", required=True, help="folder for fits, tables and the plot")
    p.add_argument("--benchmarks", nargs="+", help="benchmarks to hold out (default: all)")
    p.add_argument("--scope", nargs="+", default=["pair", "item"], choices=("pair", "item"),
                   help="split each pair's items (pair) or the benchmark's items (item)")
    p.add_argument("--split-seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="seeds of the split and the label order (one fit per benchmark)")
    p.add_argument("--min-items", type=int, default=80,
                   help="pairs need this many distinct items (the platform's rule)")
    add_fit_options(p, draws=None, warmup=1500)
    p.set_defaults(func=commands.cmd_heldout)

    p = add("split", "make a competition-layout data folder from long-form responses",
            "Hold out a fraction of each benchmark's items as NEW test items and write "
            "train/, test/ and reference/.")
    p.add_argument("data", help="anything `bayesirt info` reads")
    p.add_argument("--out", required=True, help="folder to create")
    p.add_argument("--test-frac", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=commands.cmd_split)

    p = add("demo", "run the whole pipeline on the bundled data set",
            "fit -> diagnose -> bundle -> evaluate on the small real data set shipped with "
            "the package (30 models x 601 items, 5 benchmarks).")
    p.add_argument("--out", default="demo-output", help="folder for every output")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"))
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=commands.cmd_demo)

    p = add("batch", "run a grid of fits from a TOML plan on Dask",
            "Fit every model x options x sampler settings x seed x data set that a TOML plan "
            "lists ([grid], [[fit]]; see bayesirt.batch.plan) on a local Dask cluster, or on "
            "an existing one with --scheduler. Each fit writes OUT/<name>/posterior.nc and "
            "summary.json (convergence; held-out metrics where the data has reference/); a "
            "failed fit writes failed.json and does not stop the others. Running the same "
            "command again skips finished fits and retries only the failed and missing ones.")
    p.add_argument("plan", help="plan file (.toml)")
    p.add_argument("--out", required=True, help="output folder (one subfolder per fit)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per core); the cores are "
                        "split between them (XLA host devices and BLAS threads)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster (its workers must see --out and "
                        "have bayesirt installed), e.g. tcp://10.0.0.5:8786")
    p.add_argument("--retries", type=int, default=0,
                   help="local cluster: times a fit whose worker process died is run again "
                        "before it is recorded as failed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=commands.cmd_batch)

    p = add("compare", "compare a batch's fits on one page (PSIS-LOO, held-out, seeds)",
            "PSIS-LOO table by ArviZ's compare (elpd, se, elpd difference and its se, "
            "stacking weights, Pareto k) for fits on the same data, held-out metrics, the "
            "convergence verdict of each fit and the seed-to-seed spread of the headline "
            "numbers: one self-contained HTML page, and JSON.")
    p.add_argument("dir", help="folder written by `bayesirt batch`")
    p.add_argument("--out", help="HTML page to write (default: DIR/compare.html)")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="also write the numbers as JSON to FILE; --json alone prints them "
                        "on stdout instead of the table")
    p.set_defaults(func=commands.cmd_compare)
    return parser


def _one_line_warnings(command: str) -> None:
    """Print warnings as ``bayesirt CMD: warning: message``, without a source line."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        print(f"bayesirt {command}: warning: {text}", file=file or sys.stderr, flush=True)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesirt`` command."""
    from bayesirt.errors import InputError
    from bayesirt.outputs import describe_os_error

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("fit", "demo"):
        # Commands that may touch JAX indirectly still get a sane CPU default.
        commands.configure_jax(getattr(args, "device", "auto"), 1)
    _one_line_warnings(args.command)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"bayesirt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"bayesirt {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bayesirt {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug, not a user error: show it as one
        traceback.print_exc()
        print(f"bayesirt {args.command}: internal error (a bug in bayesirt, not in your "
              "input); please report it with the traceback above", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
