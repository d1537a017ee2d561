"""What a local evaluation of a submission ZIP reports: per-run scores and the whole table.

:func:`bayesirt.submission.harness.evaluate` fills these in; they only hold and render the
numbers (``EvaluationReport.table``, ``to_dict``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

#: The submission's name in the metrics, and the three empirical baselines' names.
SYSTEM_NAME = "submission"
BASELINE_NAMES = {
    "benchmark_rate": "benchmark base rate",
    "model_accuracy": "per-model accuracy",
    "model_benchmark_accuracy": "per-(model, benchmark) accuracy",
}


@dataclass(frozen=True)
class RunResult:
    """Scores of one (policy, budget) run.

    Attributes
    ----------
    policy : str
        ``"adaptive"``, ``"random"`` or ``"none"`` (budget 0: nothing revealed).
    budget : float
        Fraction of test pairs revealed.
    n_revealed, n_scored : int
        Revealed pairs, and the unrevealed pairs that were scored.
    metrics : dict of str to dict of str to float
        System name (``"submission"`` and the baseline names) -> metric -> value.
    per_benchmark : dict of str to dict of str to dict of str to float
        Benchmark id -> system -> metric -> value.
    timings : dict of str to float
        Seconds spent in ``score_pairs`` (adaptive only) and ``predict``.
    n_clipped : int
        Probabilities outside [0, 1] that were clipped (with a warning).
    """

    policy: str
    budget: float
    n_revealed: int
    n_scored: int
    metrics: dict[str, dict[str, float]]
    per_benchmark: dict[str, dict[str, dict[str, float]]]
    timings: dict[str, float]
    n_clipped: int = 0


@dataclass(frozen=True)
class EvaluationReport:
    """Everything ``evaluate`` measured; ``table()`` gives the text to print.

    Attributes
    ----------
    zip_path, data_dir : str
        What was evaluated, on which data.
    python : str
        The interpreter that ran the submission, and ``python_version`` its version.
    n_test_pairs : int
        Rows of test_pairs.csv.
    train_seconds : float
        Wall time of ``model.train``.
    wall_seconds : float
        Wall time of the child process (train + every score_pairs + predict).
    runs : tuple of RunResult
        One per (policy, budget), budget 0 first.
    manifest : dict or None
        The bundle's manifest.json when it has one.
    warnings : tuple of str
        Messages about tolerated problems (clipped probabilities).
    foreign_modules : tuple of str
        Packages outside the container's promise that the child had imported at the end
        (empty when ``strict_imports`` blocked them, or when the submission is clean).
    sandbox : {"bwrap", "none"}
        What confined the child: bubblewrap, or nothing (the user's full rights).
    isolation : str
        One line saying how it was confined, or why it was not.
    """

    zip_path: str
    data_dir: str
    python: str
    python_version: str
    n_test_pairs: int
    train_seconds: float
    wall_seconds: float
    runs: tuple[RunResult, ...]
    manifest: dict | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)
    foreign_modules: tuple[str, ...] = field(default_factory=tuple)
    sandbox: str = "none"
    isolation: str = ""

    def to_dict(self) -> dict:
        """JSON-ready dict of the whole report."""
        d = asdict(self)
        d["runs"] = [asdict(r) for r in self.runs]
        return d

    def run(self, policy: str, budget: float) -> RunResult:
        """Return the run for ``policy`` at ``budget`` (budget 0 matches any policy).

        Raises
        ------
        KeyError
            If no such run was evaluated.
        """
        for r in self.runs:
            if math.isclose(r.budget, budget) and (r.policy == policy or budget == 0):
                return r
        raise KeyError(f"no run with policy={policy!r}, budget={budget!r}")

    def table(self, *, per_benchmark: bool = True) -> str:
        """Human-readable tables: metrics per run beside the baselines, adaptive vs random."""
        systems = [SYSTEM_NAME, *BASELINE_NAMES.values()]
        head = (
            f"bayesirt evaluate: {self.zip_path}\n"
            f"  data {self.data_dir}: {self.n_test_pairs:,} test pairs; python "
            f"{self.python_version}; train {self.train_seconds:.1f} s, child total "
            f"{self.wall_seconds:.1f} s\n"
            f"  isolation: {self.isolation or self.sandbox}"
        )
        if self.manifest:
            head += (
                f"\n  bundle: model {self.manifest.get('model_name')}, "
                f"{self.manifest.get('n_draws')} draws, acquisition "
                f"{self.manifest.get('acquisition')}"
            )
        lines = [head, ""]
        hdr = (f"{'policy':<9}{'budget':>7}{'revealed':>9}{'scored':>8}  {'system':<33}"
               f"{'log-loss':>9}{'AUC':>8}{'Brier':>8}{'ECE':>8}{'predict s':>10}")
        lines += [hdr, "-" * len(hdr)]
        for r in self.runs:
            for s_i, name in enumerate(systems):
                m = r.metrics[name]
                lead = (f"{r.policy:<9}{r.budget:>7.2%}{r.n_revealed:>9,}{r.n_scored:>8,}"
                        if s_i == 0 else " " * 33)
                t = (f"{r.timings.get('predict', math.nan):>10.2f}" if s_i == 0 else "")
                lines.append(f"{lead}  {name:<33}{m['log_loss']:>9.4f}{m['auc']:>8.4f}"
                             f"{m['brier']:>8.4f}{m['ece']:>8.4f}{t}")
        budgets = sorted({r.budget for r in self.runs if r.budget > 0})
        pols = {r.policy for r in self.runs}
        if budgets and {"adaptive", "random"} <= pols:
            lines += ["", "adaptive vs random labels (submission log-loss on unrevealed pairs)"]
            lines.append(f"{'budget':>7}{'adaptive':>10}{'random':>10}{'diff':>9}")
            for b in budgets:
                a = self.run("adaptive", b).metrics[SYSTEM_NAME]["log_loss"]
                z = self.run("random", b).metrics[SYSTEM_NAME]["log_loss"]
                lines.append(f"{b:>7.2%}{a:>10.4f}{z:>10.4f}{a - z:>+9.4f}")
        if per_benchmark:
            base = BASELINE_NAMES["model_benchmark_accuracy"]
            lines += ["", f"per benchmark (submission vs {base})"]
            h2 = (f"{'policy':<9}{'budget':>7}  {'benchmark':<16}{'n':>7}{'log-loss':>10}"
                  f"{'AUC':>8}{'base ll':>9}{'base AUC':>9}")
            lines += [h2, "-" * len(h2)]
            for r in self.runs:
                for bench, per in r.per_benchmark.items():
                    s, b = per[SYSTEM_NAME], per[base]
                    lines.append(f"{r.policy:<9}{r.budget:>7.2%}  {bench:<16}{s['n']:>7,}"
                                 f"{s['log_loss']:>10.4f}{s['auc']:>8.4f}{b['log_loss']:>9.4f}"
                                 f"{b['auc']:>9.4f}")
        if self.warnings:
            lines += ["", *(f"warning: {w}" for w in self.warnings)]
        if self.foreign_modules:
            lines.append("warning: the submission imported packages the container does not "
                         f"promise: {', '.join(self.foreign_modules)}")
        return "\n".join(lines)
