"""'What to do next': plain sentences from the verdict's numbers, most important first."""

from __future__ import annotations

import math
from typing import Any

from bayesirt.diagnostics.summary import DiagnosticSummary, fmt, fmt_int
from bayesirt.inference.blame import next_target_accept

#: Shift (in posterior sd) from which a parameter is named as where divergences concentrate.
SUSPECT_SHIFT = 0.5


def _round_up(x: float, step: int = 100) -> int:
    return int(math.ceil(x / step) * step)


def next_steps(s: DiagnosticSummary, run: dict[str, Any], suspects: list[dict[str, Any]],
               per_variable: list[dict[str, Any]]) -> list[str]:
    """Advice for each failed check and warning of a run.

    Parameters
    ----------
    s : DiagnosticSummary
        Judged summary (``thresholds``, numbers, ``warnings``).
    run : dict
        ``warmup``, ``draws``, ``target_accept``, ``model_name`` of the fit (None if unknown).
    suspects : list of dict
        From :func:`bayesirt.diagnostics.compute.divergence_suspects`.
    per_variable : list of dict
        Reported variables with their worst ``rhat_max`` (names the blocks that mix badly).

    Returns
    -------
    list of str
        One sentence (or two) per problem; a single "nothing to fix" line when none.
    """
    th = s.thresholds
    out: list[str] = []
    warmup, draws = run.get("warmup"), run.get("draws")
    hier = str(run.get("model_name", "")).startswith("hier")
    if s.divergences > th.get("allow_divergences", 0):
        ta = run.get("target_accept")
        now_ta = f", now {fmt(float(ta), 2)}" if ta is not None else ""
        now_w = f", now {warmup}" if warmup is not None else ""
        line = (f"Divergences ({s.divergences}): the sampler missed part of the posterior, so "
                "these draws are biased. Re-fit with a higher step-size target "
                f"(`--target-accept {next_target_accept(ta)}`{now_ta}) and a longer warm-up "
                f"(`--warmup {max(1000, _round_up(2 * warmup)) if warmup else 2000}`{now_w}).")
        if suspects and abs(suspects[0]["shift"]) >= SUSPECT_SHIFT:
            where = ", ".join(f"{r['name']} ({'log, ' if r['log'] else ''}"
                              f"{r['shift']:+.1f} sd)" for r in suspects
                              if abs(r["shift"]) >= SUSPECT_SHIFT)
            line += (f" The divergent draws sit apart from the others in {where}: that "
                     "block's hierarchy is the likely funnel")
            line += (" (if divergences persist, change how it is sampled: "
                     "`--parameterisation noncentred`)." if hier else ".")
        elif suspects:
            line += (" No group-level parameter separates the divergent draws (largest shift "
                     f"{abs(suspects[0]['shift']):.1f} sd): they are spread out, more typical "
                     "of a too-large step size than of one funnel.")
        out.append(line)
    rhat_bad = not s.rhat_max <= th.get("rhat_max", 1.01)
    if rhat_bad:
        blocks = [r["var"] for r in per_variable if not r["rhat_max"] <= th.get("rhat_max")]
        line = (f"R-hat {fmt(s.rhat_max)} at {s.rhat_max_where}: the chains disagree. Look at "
                "its trace and rank plots below")
        short = (warmup is not None and warmup < 1000) or (draws is not None and draws < 500)
        if short:
            line += (f"; this run is short, so run longer first: `--warmup "
                     f"{max(1000, _round_up(2 * (warmup or 500)))} --draws "
                     f"{max(1000, _round_up(2 * (draws or 500)))}` (now {warmup} + {draws})")
        elif s.rhat_max > 1.1:
            line += ("; chains this far apart after a long run are stuck or in different "
                     "modes, which more draws rarely cure: check the initialisation and the "
                     "parameterisation of the variables below")
        else:
            line += "; run longer (more `--warmup` and `--draws`)"
        if blocks:
            line += f". Variables concerned: {', '.join(blocks[:6])}"
        out.append(line + ".")
    ess_min = th.get("ess_min", 400)
    worst_ess = min(s.ess_bulk_min, s.ess_tail_min, key=lambda v: v if v == v else -1)
    if not worst_ess >= ess_min:
        where = s.ess_bulk_min_where if worst_ess == s.ess_bulk_min else s.ess_tail_min_where
        line = f"ESS {fmt_int(worst_ess)} < {fmt_int(ess_min)} at {where}: "
        if draws and worst_ess > 0 and not rhat_bad:
            want = _round_up(1.2 * draws * ess_min / worst_ess)
            line += (f"ESS grows about linearly with the draws, so `--draws {want}` (now "
                     f"{draws}) should reach it; or make that block mix faster.")
        else:
            line += "fix the mixing first (R-hat, divergences), then draw more."
        out.append(line)
    if s.bfmi is not None:
        low = [i for i, b in enumerate(s.bfmi) if not b >= th.get("bfmi_min", 0.3)]
        if low:
            out.append(f"E-BFMI {fmt(s.bfmi_min)} in chain(s) {', '.join(map(str, low))}: "
                       "momentum resampling barely moves the energy (heavy tails or a funnel). "
                       "Reparameterise the worst-mixing hierarchy (a non-centred scale) and warm "
                       "up longer.")
    if s.treedepth_saturated:
        depth = s.max_tree_depth or 10
        out.append(f"{s.treedepth_saturated} draws hit the tree-depth limit {depth}: raise "
                   f"`--max-tree-depth {depth + 2}` or reparameterise (costs time, not "
                   "validity).")
    if any(w.startswith("Pareto k") for w in s.warnings):
        out.append("Pareto k: for the observations flagged, PSIS-LOO is unreliable; compare "
                   "models on the held-out metrics (`--test-dir`) or by K-fold refits.")
    if s.passed and not s.treedepth_saturated:
        out.insert(0, "Convergence: nothing to fix, every check passes; the draws are usable. "
                      "Next, read the posterior predictive checks and held-out metrics below.")
    return out
