"""A chain unlike the others: stuck on a collapsed step size, or holding the divergences.

Split from :mod:`.blame` (which groups failing scalars into blocks): many failed fits are one
bad chain among good ones, and naming that chain first makes the block list readable. numpy
only; the parameters it names are labelled with :class:`.blame.BlockMap`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .blame import BlockMap, iter_variables

#: A chain whose adapted step size is below this fraction of the other chains' median is
#: *stuck*: it needs ~1/fraction more leapfrog steps for the same distance, hits the tree-depth
#: limit and hardly moves. The chain that stuck on half of the small set's items
#: (bench/results/robustness_20261207.md) adapted 1.7e-4 against 0.092-0.099 (1/550). Over
#: the 52 robustness-suite fits recorded in bench/results, every other chain's step size was
#: >= 0.50 of its fit's other chains' median; the one below 0.1 was a stuck chain again
#: (real-small-drop without the tilt: 0.002 against 0.076-0.11).
STUCK_STEP_RATIO = 0.1
#: One chain holding at least this share of the divergences (and at least DIVERGENCE_MIN of
#: them) diverges in a region the other chains did not reach; the suite's one-chain piles:
#: [0, 144, 0, 0], [85, 4, 10, 3], [11, 3, 15, 82] (9 of the 52 recorded suite fits).
DIVERGENCE_SHARE = 0.7
DIVERGENCE_MIN = 10


def locate_odd_chain(posterior: dict[str, np.ndarray], sample_stats: dict[str, np.ndarray],
                     dims=None, coords=None, constants=None,
                     top: int = 3, target_accept: float | None = None) -> dict[str, Any] | None:
    """Find a chain unlike the others: stuck (a collapsed step size) or holding the divergences.

    Many failed fits are one bad chain among good ones; R-hat then fails nearly everywhere
    and the block list names symptoms. This names the chain, why it is odd, and the
    parameters whose draws sit furthest from the other chains' (distance of the chain's mean
    from the others' pooled mean, in the others' posterior sd).

    Parameters
    ----------
    posterior : dict of str to ndarray
        Draws ``(chains, draws, ...)``.
    sample_stats : dict of str to ndarray
        ``diverging`` ``(chains, draws)``; ``step_size``, ``n_steps``, ``tree_depth`` when
        there (without ``step_size`` only the divergence test runs).
    dims, coords, constants, target_accept : optional
        As for :func:`summarise_blocks`.
    top : int
        How many parameters (one per block) to name.

    Returns
    -------
    dict or None
        None with fewer than 3 chains (two chains cannot say which one is odd) or when no
        chain is odd. Else ``chain`` (0-based), ``n_chains``, ``reason`` (``"stuck"`` or
        ``"divergences"``), the chain's ``step_size`` and ``steps_per_draw`` with the
        others' range (``*_others``, [min, max]), its ``tree_depth_hits``, ``divergences``
        (of ``divergences_total``), ``apart`` (list of dicts: ``parameter``, ``block``,
        ``value``, ``others``, ``distance``) and ``text`` (lines for the headline).
    """
    from bayesirt.inference.headline import param_name

    diverging = np.asarray(sample_stats["diverging"], bool)
    n_chains = diverging.shape[0]
    if n_chains < 3:
        return None
    div = diverging.reshape(n_chains, -1).sum(axis=1)
    chain, reason = None, None
    if "step_size" in sample_stats:
        step = np.median(np.asarray(sample_stats["step_size"], dtype=np.float64).reshape(
            n_chains, -1), axis=1)
        ratio = np.array([step[c] / np.median(np.delete(step, c)) for c in range(n_chains)])
        if ratio.min() < STUCK_STEP_RATIO:
            chain, reason = int(np.argmin(ratio)), "stuck"
    if chain is None and div.sum() >= DIVERGENCE_MIN and div.max() >= DIVERGENCE_SHARE * div.sum():
        chain, reason = int(np.argmax(div)), "divergences"
    if chain is None:
        return None
    others = np.delete(np.arange(n_chains), chain)

    def split(x):
        per = np.asarray(x, dtype=np.float64).reshape(n_chains, -1).mean(axis=1)
        return float(per[chain]), [float(per[others].min()), float(per[others].max())]

    out: dict[str, Any] = {"chain": chain, "n_chains": n_chains, "reason": reason,
                           "divergences": int(div[chain]), "divergences_total": int(div.sum())}
    for key, stat in (("step_size", "step_size"), ("steps_per_draw", "n_steps")):
        if stat in sample_stats:
            out[key], out[f"{key}_others"] = split(sample_stats[stat])
    if "tree_depth" in sample_stats and "max_tree_depth" in sample_stats:
        depth = np.asarray(sample_stats["tree_depth"]).reshape(n_chains, -1)
        out["tree_depth_hits"] = int((depth[chain] >= sample_stats["max_tree_depth"]).sum())

    maps = BlockMap(dims, coords, constants, target_accept)
    best: dict[tuple[str, int | None], dict[str, Any]] = {}
    for name, arr in iter_variables(posterior):
        if arr.shape[0] != n_chains or arr.ndim < 2:
            continue
        flat = arr.reshape(n_chains, arr.shape[1], -1)
        mean, var = flat.mean(axis=1), flat.var(axis=1)
        centre = mean[others].mean(axis=0)
        # The others' posterior sd: their within-chain variance plus their means' spread.
        sd = np.sqrt(var[others].mean(axis=0) + mean[others].var(axis=0))
        ok = sd > 0
        dist = np.where(ok, np.abs(mean[chain] - centre) / np.where(ok, sd, 1.0), 0.0)
        for j in np.argsort(-dist)[: max(top * 4, 8)]:
            key = maps.key(name, arr.shape[2:], int(j))
            if key not in best or dist[j] > best[key]["distance"]:
                best[key] = {"parameter": param_name(name, arr.shape[2:], int(j), dims, coords),
                             "block": maps.title(*key), "value": float(mean[chain, j]),
                             "others": float(centre[j]), "distance": float(dist[j])}
    out["apart"] = sorted(best.values(), key=lambda b: -b["distance"])[:top]
    out["next_target_accept"] = maps.next_ta
    out["text"] = _odd_chain_text(out)
    return out


def _odd_chain_text(odd: dict[str, Any]) -> list[str]:
    c, n = odd["chain"] + 1, odd["n_chains"]
    if odd["reason"] == "stuck":
        head = (f"  one chain is stuck: chain {c} of {n} adapted a step size of "
                f"{odd['step_size']:.2g} against {odd['step_size_others'][0]:.2g}-"
                f"{odd['step_size_others'][1]:.2g} in the others")
        if "steps_per_draw" in odd:
            lo, hi = odd["steps_per_draw_others"]
            head += f" ({odd['steps_per_draw']:.0f} leapfrog steps per draw, not {lo:.0f}-{hi:.0f})"
        advice = ("the other chains agree; the R-hat failures above follow from this one. "
                  "Rerun with more --warmup or another --seed: a chain that sticks there "
                  "again marks a funnel to reparameterise")
    else:
        head = (f"  one chain holds the divergences: chain {c} of {n}, "
                f"{odd['divergences']} of {odd['divergences_total']}")
        advice = ("it reached a region the other chains did not; --target-accept "
                  f"{odd.get('next_target_accept', 0.9)} or more --warmup, and look at the "
                  "parameters named")
    apart = "; ".join(f"{a['parameter']} {a['value']:.3g} (others {a['others']:.3g})"
                      for a in odd["apart"])
    return [head, f"    its draws sit apart at {apart}", f"      -> {advice}"]
