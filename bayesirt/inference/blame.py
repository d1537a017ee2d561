"""Which block of parameters a non-converged fit is stuck in, and what to try.

``convergence_headline`` computes R-hat and ESS per scalar; this module groups those scalars
into the model's blocks (the category level of one benchmark, one benchmark's item
parameters, its abilities, its hyperparameters, the general abilities) using the names and
index maps the fit already has (``FitResult.dims``, ``coords``, ``constant_data``), and
locates divergent transitions: for every scalar, where the divergent draws sit in its
marginal (the mean rank of the divergent draws). A funnel shows as divergences piled at one
end of a spread parameter (e.g. ``sigma_category`` near 0).

numpy and scipy only; the block rules name the ``hier2pl`` sites and fall back to the
variable name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtri

# Thresholds of the headline (kept in step with ``format_headline``'s defaults).
RHAT_MAX = 1.01
ESS_MIN = 400.0

BENCHMARK_LEVEL = {
    "mu_difficulty": "difficulty mean",
    "mu_difficulty_z": "difficulty mean (its non-centred coordinate)",
    "mu_difficulty_raw": "difficulty mean (itself, or where anchored its offset from the "
                         "anchoring category)",
    "sigma_difficulty": "difficulty spread",
    "sigma_difficulty_z": "difficulty spread (its non-centred coordinate)",
    "mu_log_discrimination": "discrimination mean",
    "mu_log_discrimination_z": "discrimination mean (its non-centred coordinate)",
    "sigma_log_discrimination": "discrimination spread",
    "sigma_log_discrimination_z": "discrimination spread (its non-centred coordinate)",
    "rho": "loading",
    "rho_z": "loading (its non-centred coordinate)",
    "rho_raw": "loading (logit where centred, else its non-centred coordinate)",
    "guess": "guessing floor",
}
ITEM_LEVEL = ("difficulty", "difficulty_raw", "log_discrimination", "log_discrimination_raw")
CATEGORY_LEVEL = ("sigma_category", "category_raw", "category_offset_free", "category_offset")
# Copies of other variables (same values under two names) are skipped so a failure is not
# counted twice.
DUPLICATES = ("category_offset_free",)

ADVICE = {
    "category": (
        "its categories' spread (sigma_category) is set by only {n_cat} category means; "
        "try --parameterisation noncentred, more --warmup, or merge its smallest categories"
    ),
    "items": (
        "try --parameterisation noncentred (items with few responses) or centred (items "
        "with many), then more --warmup/--draws"
    ),
    "abilities": (
        "{n_models} models observed on it; abilities are standardised per benchmark, so "
        "try more --warmup/--draws, or --target-accept {ta}"
    ),
    "benchmark": (
        "{n_models} models and {n_items} items on it; try more --warmup/--draws or "
        "--target-accept {ta} (a spread pinned by few items or models is a funnel)"
    ),
    "general": "the general ability follows the loadings rho; try more --draws",
    "population": (
        "the population of benchmarks rests on only {n_bench} benchmarks (a spread of a "
        "few values is a funnel); try more --warmup/--draws or --target-accept {ta}"
    ),
    "metadata": (
        "the metadata prior (coefficients, organisation effects, residual scale); try more "
        "--warmup/--draws, or fit without --metadata"
    ),
    "other": "try more --warmup/--draws or --target-accept {ta}",
}


def next_target_accept(now: float | None) -> float:
    """Return the next rung of 0.9, 0.95, 0.99, 0.995, 0.999 above ``now`` (None: 0.8)."""
    now = 0.8 if now is None else float(now)
    return next((r for r in (0.9, 0.95, 0.99, 0.995) if now < r), 0.999)


def _label(coords: dict[str, Any] | None, dim: str, i: int) -> str:
    values = (coords or {}).get(dim)
    return str(values[i]) if values is not None and i < len(values) else str(i)


class BlockMap:
    """Maps (variable, element) to a block key and a human-readable block name."""

    def __init__(self, dims, coords, constants, target_accept=None):
        self.next_ta = next_target_accept(target_accept)
        self.dims = dims or {}
        self.coords = coords or {}
        self.constants = constants or {}
        self.benchmarks = list(self.coords.get("benchmark", []))
        cats = list(self.coords.get("category", []))
        cat_bench = self.constants.get("category_benchmark")
        self.cat_bench = {c: int(cat_bench[i]) for i, c in enumerate(cats)} if (
            cat_bench is not None and len(cat_bench) == len(cats)) else {}
        # Counts used in the advice, when the index arrays are there.
        self.n_models: dict[int, int] = {}
        self.n_items: dict[int, int] = {}
        self.n_cat: dict[int, int] = {}
        ib = self.constants.get("item_benchmark")
        mi, ii = self.constants.get("model_idx"), self.constants.get("item_idx")
        if ib is not None and mi is not None and ii is not None:
            ob = np.asarray(ib)[np.asarray(ii)]
            for k in range(len(self.benchmarks)):
                self.n_models[k] = int(np.unique(np.asarray(mi)[ob == k]).size)
                self.n_items[k] = int(np.sum(np.asarray(ib) == k))
        ic = self.constants.get("item_category")
        if ic is not None and cat_bench is not None:
            used = np.unique(np.asarray(ic))
            for k in range(len(self.benchmarks)):
                self.n_cat[k] = int(np.sum(np.asarray(cat_bench)[used] == k))

    def bench_name(self, k: int | None) -> str:
        """Return the name of benchmark ``k`` ("?" when unknown)."""
        if k is None:
            return "?"
        return self.benchmarks[k] if 0 <= k < len(self.benchmarks) else str(k)

    def key(self, name: str, shape: tuple[int, ...], flat: int) -> tuple[str, int | None]:
        """(kind, benchmark index or None) of one scalar."""
        dims = self.dims.get(name, ())
        index = np.unravel_index(flat, shape) if shape else ()

        def bench_of_dim(dim: str, i: int) -> int | None:
            if dim == "benchmark":
                return i
            if dim == "multi_benchmark":
                lab = _label(self.coords, dim, i)
                return self.benchmarks.index(lab) if lab in self.benchmarks else None
            if dim in ("category", "free_category"):
                return self.cat_bench.get(_label(self.coords, dim, i))
            if dim == "item":
                ib = self.constants.get("item_benchmark")
                return int(ib[i]) if ib is not None and i < len(ib) else None
            return None

        bench = None
        for axis, dim in enumerate(dims):
            if axis < len(index):
                b = bench_of_dim(dim, int(index[axis]))
                if b is not None:
                    bench = b
        if name in CATEGORY_LEVEL:
            return "category", bench
        if name in ITEM_LEVEL:
            return "items", bench
        if name == "ability":
            return "abilities", bench
        if name in BENCHMARK_LEVEL:
            return "benchmark", bench
        if name == "theta":
            return "general", None
        if name.startswith("benchmark_pop_"):
            return "population", None
        if name in ("metadata_coef", "org_scale", "org_z", "org_effect",
                    "ability_residual_scale"):
            return "metadata", None
        return f"other:{name}", bench

    def title(self, kind: str, bench: int | None) -> str:
        """Return a block's human-readable name, e.g. "abilities on benchmark gsm8k"."""
        b = self.bench_name(bench)
        if kind == "category":
            return f"category level of benchmark {b}"
        if kind == "items":
            return f"item difficulties/discriminations of benchmark {b}"
        if kind == "abilities":
            return f"abilities on benchmark {b}"
        if kind == "benchmark":
            return f"benchmark-level parameters of {b}"
        if kind == "general":
            return "general abilities (theta)"
        if kind == "population":
            return "population of benchmarks (benchmark_pop_*)"
        if kind == "metadata":
            return "metadata ability prior"
        name = kind.split(":", 1)[1]
        return name if bench is None else f"{name} of {b}"

    def advice(self, kind: str, bench: int | None) -> str:
        """Return what to try for a block, with its counts and the next target_accept."""
        text = ADVICE.get(kind, ADVICE["other"])
        return text.format(n_models=self.n_models.get(bench, "?"),
                           n_items=self.n_items.get(bench, "?"),
                           n_cat=self.n_cat.get(bench, "?"),
                           n_bench=len(self.benchmarks) or "?", ta=self.next_ta)


def _severity(rhat: float, bulk: float, tail: float) -> float:
    """> 1 where a threshold fails; larger is worse (R-hat 1.02 and ESS 200 both score 2)."""
    parts = [400.0 / max(bulk, 1.0) if np.isfinite(bulk) else 0.0,
             400.0 / max(tail, 1.0) if np.isfinite(tail) else 0.0]
    if np.isfinite(rhat):
        parts.append((rhat - 1.0) / (RHAT_MAX - 1.0))
    return float(max(parts))


def summarise_blocks(per_scalar: list[tuple[str, tuple[int, ...], np.ndarray, np.ndarray,
                                            np.ndarray, np.ndarray]],
                     dims=None, coords=None, constants=None,
                     target_accept: float | None = None) -> list[dict[str, Any]]:
    """Worst R-hat / ESS per block, failing blocks first.

    Parameters
    ----------
    per_scalar : list of (name, shape, flat_index, rhat, ess_bulk, ess_tail)
        Per variable: the element shape, the flat indices of its varying scalars and their
        statistics (arrays of equal length).
    dims, coords, constants : dict, optional
        ``FitResult.dims``, ``coords`` and ``constant_data``.
    target_accept : float or None
        The fit's target acceptance probability: the advice names the next rung above it.

    Returns
    -------
    list of dict
        One per block that fails a threshold, worst first: ``block``, ``kind``,
        ``benchmark``, ``n_failing``, ``n``, ``rhat_max``, ``ess_bulk_min``,
        ``ess_tail_min``, ``worst`` (a parameter name), ``advice``, ``text``.
    """
    from bayesirt.inference.headline import param_name

    maps = BlockMap(dims, coords, constants, target_accept)
    acc: dict[tuple[str, int | None], dict[str, Any]] = {}
    for name, shape, flat, rhat, bulk, tail in per_scalar:
        if name in DUPLICATES:
            continue
        for j in range(len(flat)):
            sev = _severity(float(rhat[j]), float(bulk[j]), float(tail[j]))
            key = maps.key(name, shape, int(flat[j]))
            a = acc.setdefault(key, {"n": 0, "n_failing": 0, "rhat_max": -np.inf,
                                     "ess_bulk_min": np.inf, "ess_tail_min": np.inf,
                                     "severity": 0.0, "worst": ""})
            a["n"] += 1
            a["n_failing"] += int(sev > 1.0)
            a["rhat_max"] = max(a["rhat_max"], float(np.nan_to_num(rhat[j], nan=-np.inf)))
            a["ess_bulk_min"] = min(a["ess_bulk_min"], float(np.nan_to_num(bulk[j], nan=np.inf)))
            a["ess_tail_min"] = min(a["ess_tail_min"], float(np.nan_to_num(tail[j], nan=np.inf)))
            if sev > a["severity"]:
                a["severity"] = sev
                a["worst"] = param_name(name, shape, int(flat[j]), dims, coords)
    out = []
    for (kind, bench), a in acc.items():
        if a["n_failing"] == 0:
            continue
        title = maps.title(kind, bench)
        advice = maps.advice(kind, bench)
        text = (f"{title}: {a['n_failing']} of {a['n']} values fail (R-hat max "
                f"{a['rhat_max']:.3f}, bulk-ESS min {a['ess_bulk_min']:.0f}, tail-ESS min "
                f"{a['ess_tail_min']:.0f}; worst {a['worst']})")
        out.append({"block": title, "kind": kind, "benchmark": maps.bench_name(bench),
                    **{k: a[k] for k in ("n_failing", "n", "rhat_max", "ess_bulk_min",
                                         "ess_tail_min", "worst", "severity")},
                    "advice": advice, "text": text})
    out.sort(key=lambda b: -b["severity"])
    return out


def iter_variables(posterior: dict[str, np.ndarray]):
    """(name, draws as float64) of every variable, copies of another variable left out."""
    for name, value in posterior.items():
        if name not in DUPLICATES:
            yield name, np.asarray(value, dtype=np.float64)


#: Chance level of :func:`locate_divergences`: with divergences anywhere, each scalar's z is
#: about N(0, 1), so the largest |z| among N scalars exceeds ``ndtri(1 - CHANCE_ALPHA / 2N)``
#: with probability about CHANCE_ALPHA (Bonferroni). A few divergences in a fit of thousands
#: of scalars always put some scalar near |z| = 3.5-4 (the suite's scattered ones: 2.7-3.4
#: at the top, bench/results/robustness_steps.md); a funnel that many divergences sit in
#: puts its spread far beyond. Below the level the draws do not locate the divergences.
CHANCE_ALPHA = 0.05


def chance_z(n_scalars: int) -> float:
    """Return the |z| that the largest of ``n_scalars`` null z-scores exceeds by chance.

    With probability :data:`CHANCE_ALPHA` (two-sided, Bonferroni).
    """
    return float(ndtri(1.0 - CHANCE_ALPHA / (2.0 * max(int(n_scalars), 1))))


def locate_divergences(posterior: dict[str, np.ndarray], diverging: np.ndarray,
                       dims=None, coords=None, constants=None,
                       top: int = 3, target_accept: float | None = None) -> list[dict[str, Any]]:
    """Where the divergent draws sit: the scalars whose marginal they are most lopsided in.

    For each scalar the divergent draws' mean rank among all draws (pooled over chains) is
    turned into a z-score against "divergences anywhere" (uniform ranks); a funnel gives
    divergences at the low end of its spread parameter (z << 0).

    Parameters
    ----------
    posterior : dict of str to ndarray
        Draws ``(chains, draws, ...)``.
    diverging : ndarray of bool, shape (chains, draws)
    dims, coords, constants, target_accept : optional
        As for :func:`summarise_blocks`.
    top : int
        How many blocks to return.

    Returns
    -------
    list of dict
        Up to ``top`` blocks (most lopsided first), each with ``block``, ``parameter``,
        ``z``, ``quantile`` (mean rank of the divergent draws, 0-1), ``value_divergent``,
        ``value_median``, ``advice``, ``text``, and the chance level: ``n_scalars`` (how
        many were tested) and ``chance_z`` (:func:`chance_z`; below it the divergent draws
        do not locate the divergences).
    """
    from bayesirt.inference.headline import param_name

    div = np.asarray(diverging, bool).ravel()
    n_div = int(div.sum())
    if n_div == 0:
        return []
    maps = BlockMap(dims, coords, constants, target_accept)
    best: dict[tuple[str, int | None], dict[str, Any]] = {}
    n_scalars = 0
    for name, arr in iter_variables(posterior):
        if arr.shape[:2] != np.asarray(diverging).shape:
            continue
        flat = arr.reshape(arr.shape[0] * arr.shape[1], -1)
        varying = np.ptp(flat, axis=0) > 0
        if not varying.any():
            continue
        cols = np.flatnonzero(varying)
        n_scalars += cols.size
        # Ranks in column chunks: memory stays at chunk x draws however many items there are.
        q = np.empty(cols.size)
        for start in range(0, cols.size, 1024):
            part = cols[start:start + 1024]
            ranks = np.argsort(np.argsort(flat[:, part], axis=0), axis=0)
            q[start:start + part.size] = (ranks[div].mean(axis=0) + 0.5) / flat.shape[0]
        z = (q - 0.5) / np.sqrt(1.0 / 12.0 / n_div)
        for j in np.argsort(-np.abs(z))[: max(top * 4, 8)]:
            key = maps.key(name, arr.shape[2:], int(cols[j]))
            if key not in best or abs(z[j]) > abs(best[key]["z"]):
                col = flat[:, cols[j]]
                best[key] = {
                    "block": maps.title(*key),
                    "advice": maps.advice(*key),
                    "parameter": param_name(name, arr.shape[2:], int(cols[j]), dims, coords),
                    "z": float(z[j]), "quantile": float(q[j]),
                    "value_divergent": float(np.median(col[div])),
                    "value_median": float(np.median(col)),
                }
    out = sorted(best.values(), key=lambda b: -abs(b["z"]))[:top]
    for b in out:
        b["n_scalars"], b["chance_z"] = n_scalars, chance_z(n_scalars)
        end = "low" if b["z"] < 0 else "high"
        b["text"] = (f"{b['block']}: at the {end} end of {b['parameter']} (divergent draws' "
                     f"median {b['value_divergent']:.3g} vs {b['value_median']:.3g} overall, "
                     f"z = {b['z']:.1f})")
    return out


def format_blame(headline: dict[str, Any], max_blocks: int = 3) -> list[str]:
    """Lines for the headline: the failing blocks, where divergences sit, what to try."""
    lines = []
    blocks = headline.get("blocks") or []
    divs = headline.get("divergence_location") or []
    odd = headline.get("odd_chain")
    if odd:
        # The chain first: the blocks below are then mostly its symptoms, so fewer of them.
        lines += odd["text"]
        max_blocks = min(max_blocks, 2)
    if blocks:
        lines.append("  where it fails (worst first):")
        for b in blocks[:max_blocks]:
            lines.append(f"    - {b['text']}")
            lines.append(f"      -> {b['advice']}")
        if len(blocks) > max_blocks:
            lines.append(f"    (+{len(blocks) - max_blocks} more blocks)")
    if divs:
        chains = headline.get("divergences_per_chain")
        where = f" (per chain: {chains})" if chains is not None else ""
        top = divs[0]
        ta = next_target_accept(headline.get("target_accept"))
        chance = top.get("chance_z", 4.0)
        if abs(top["z"]) < chance:
            # Not "no funnel": a divergent draw is the iteration's accepted point, often far
            # from where its trajectory blew up (bench/divergence_replay.py found
            # real-full-cat10-500's chance-level divergences all in one category funnel).
            lines.append(f"  divergent transitions{where} sit nowhere beyond chance: among "
                         f"{top.get('n_scalars', 0):,} scalars |z| < {chance:.1f} is expected, "
                         "and the most lopsided is")
            lines.append(f"    - {top['text']}")
            lines.append(f"      -> --target-accept {ta} (smaller steps), or more --warmup")
            return lines
        lines.append(f"  divergent transitions sit{where}:")
        for d in divs:
            lines.append(f"    - {d['text']}")
        if top["block"] not in {b["block"] for b in blocks[:max_blocks]}:
            advice = top.get("advice", ADVICE["other"].format(ta=ta))
            lines.append(f"      -> {top['block']}: {advice}")
        elif not blocks:
            lines.append(f"      -> --target-accept {ta} (smaller steps), or more --warmup")
    return lines
