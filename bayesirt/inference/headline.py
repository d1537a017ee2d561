"""The convergence headline of a fit: worst R-hat and ESS, divergences, the verdict.

What ``bayesirt fit`` prints in one screen and what ``--strict`` decides on; the block
diagnosis of a failing fit is :mod:`bayesirt.inference.blame`'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesirt.inference.result import FitResult


def param_name(name: str, shape: tuple[int, ...], flat_index: int,
                dims: dict[str, tuple[str, ...]] | None, coords: dict[str, Any] | None) -> str:
    """``ability[meta/llama-3-8b, gsm8k]`` from a flat index, labels where coords exist."""
    if not shape:
        return name
    index = np.unravel_index(flat_index, shape)
    names = (dims or {}).get(name, ())
    labels = []
    for axis, i in enumerate(index):
        dim = names[axis] if axis < len(names) else None
        values = (coords or {}).get(dim) if dim else None
        labels.append(str(values[i]) if values is not None and i < len(values) else str(i))
    return f"{name}[{', '.join(labels)}]"


def convergence_headline(posterior: dict[str, np.ndarray], sample_stats: dict[str, np.ndarray],
                         max_tree_depth: int, dims: dict[str, tuple[str, ...]] | None = None,
                         coords: dict[str, Any] | None = None,
                         constants: dict[str, np.ndarray] | None = None,
                         target_accept: float | None = None) -> dict[str, Any]:
    """Worst-case convergence numbers over every scalar of every variable.

    Parameters
    ----------
    posterior : dict of str to ndarray
        Draws shaped ``(chains, draws, ...)``.
    sample_stats : dict of str to ndarray
        Must hold ``diverging`` and ``tree_depth`` ``(chains, draws)``.
    max_tree_depth : int
        The limit used, to count saturated transitions.
    dims, coords : dict, optional
        ``FitResult.dims`` and ``FitResult.coords``: name the worst parameters by their ids.
    constants : dict, optional
        ``FitResult.constant_data`` (item -> benchmark, category -> benchmark maps): lets
        the block diagnosis name the benchmark of item and category parameters.
    target_accept : float or None
        The fit's target acceptance probability; the advice names the next rung above it.

    Returns
    -------
    dict
        ``rhat_max``, ``rhat_max_name``, ``ess_bulk_min``, ``ess_bulk_min_name``,
        ``ess_tail_min``, ``ess_tail_min_name``, ``divergences``, ``divergences_per_chain``,
        ``tree_depth_hits``, ``n_parameters``, and the block diagnosis
        (``bayesirt.inference.blame``): ``blocks`` (failing blocks, worst first),
        ``divergence_location`` (where divergent draws sit) and ``odd_chain``
        (``bayesirt.inference.oddchain``: a stuck chain or one holding the divergences,
        else None).
    """
    from arviz_stats.base import array_stats

    from bayesirt.inference import blame, oddchain

    worst: dict[str, Any] = {
        "rhat_max": -np.inf,
        "ess_bulk_min": np.inf,
        "ess_tail_min": np.inf,
        "n_parameters": 0,
    }
    per_scalar = []
    for name, value in posterior.items():
        arr = np.asarray(value, dtype=np.float64)
        flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
        # Constant columns (fixed zeros, ones) have no meaningful R-hat or ESS.
        varying = np.ptp(flat, axis=(0, 1)) > 0
        if not varying.any():
            continue
        flat = np.moveaxis(flat[..., varying], -1, 0)
        worst["n_parameters"] += flat.shape[0]
        rhat = array_stats.rhat(flat, chain_axis=-2, draw_axis=-1, method="rank")
        bulk = array_stats.ess(flat, chain_axis=-2, draw_axis=-1, method="bulk")
        tail = array_stats.ess(flat, chain_axis=-2, draw_axis=-1, method="tail", prob=0.05)
        idx = np.flatnonzero(varying)
        per_scalar.append((name, arr.shape[2:], idx, rhat, bulk, tail))
        for key, vals, pick, better in (
            ("rhat_max", rhat, np.nanargmax, np.greater),
            ("ess_bulk_min", bulk, np.nanargmin, np.less),
            ("ess_tail_min", tail, np.nanargmin, np.less),
        ):
            if np.isnan(vals).all():  # R-hat of one chain is undefined: nothing to report
                continue
            i = int(pick(vals))
            if better(vals[i], worst[key]):
                worst[key] = float(vals[i])
                worst[f"{key}_name"] = param_name(name, arr.shape[2:], int(idx[i]), dims,
                                                   coords)
    depth = np.asarray(sample_stats["tree_depth"])
    diverging = np.asarray(sample_stats["diverging"])
    worst["divergences"] = int(diverging.sum())
    worst["divergences_per_chain"] = diverging.reshape(diverging.shape[0], -1).sum(
        axis=1).astype(int).tolist()
    worst["tree_depth_hits"] = int((depth >= max_tree_depth).sum())
    worst["target_accept"] = target_accept
    worst["blocks"] = blame.summarise_blocks(per_scalar, dims, coords, constants,
                                             target_accept=target_accept)
    worst["divergence_location"] = blame.locate_divergences(
        posterior, diverging, dims, coords, constants, target_accept=target_accept)
    worst["odd_chain"] = oddchain.locate_odd_chain(
        posterior, {**sample_stats, "max_tree_depth": max_tree_depth}, dims, coords, constants,
        target_accept=target_accept)
    return worst


def fit_summary(result: FitResult) -> tuple[dict[str, Any], str, bool]:
    """Return a finished fit's convergence headline, its one-screen text and its verdict.

    Parameters
    ----------
    result : FitResult

    Returns
    -------
    headline : dict
        :func:`convergence_headline` of the fit.
    text : str
        :func:`format_headline` of it, with the sampling wall time.
    passed : bool
        Every default threshold met.
    """
    headline = convergence_headline(result.posterior, result.sample_stats,
                                    result.max_tree_depth, result.dims, result.coords,
                                    constants=result.constant_data,
                                    target_accept=(result.config or {}).get("target_accept"))
    text, passed = format_headline(headline,
                                   wall_seconds=result.provenance["sampling_wall_seconds"])
    return headline, text, passed


def format_headline(headline: dict[str, Any], *, rhat_max: float = 1.01, ess_min: float = 400,
                    wall_seconds: float | None = None) -> tuple[str, bool]:
    """One-screen convergence summary and whether it meets the thresholds.

    Returns
    -------
    text : str
    passed : bool
    """
    rhat_known = np.isfinite(headline["rhat_max"])
    rhat_text = (f"{headline['rhat_max']:.4f}  ({headline.get('rhat_max_name', '')})"
                 if rhat_known else "n/a  (needs 2 or more chains)")
    checks = [
        (f"R-hat max        {rhat_text}", bool(rhat_known and headline["rhat_max"] <= rhat_max)),
        (f"bulk-ESS min     {headline['ess_bulk_min']:.0f}  "
         f"({headline.get('ess_bulk_min_name', '')})", headline["ess_bulk_min"] >= ess_min),
        (f"tail-ESS min     {headline['ess_tail_min']:.0f}  "
         f"({headline.get('ess_tail_min_name', '')})", headline["ess_tail_min"] >= ess_min),
        (f"divergences      {headline['divergences']}", headline["divergences"] == 0),
        (f"tree-depth hits  {headline['tree_depth_hits']}", headline["tree_depth_hits"] == 0),
    ]
    lines = [f"convergence over {headline['n_parameters']} parameters"]
    if wall_seconds is not None:
        lines[0] += f" (sampling took {wall_seconds:.1f} s)"
    lines += [f"  {'ok  ' if ok else 'FAIL'}  {text}" for text, ok in checks]
    passed = all(ok for _, ok in checks[:4])
    if not passed:
        from bayesirt.inference.blame import format_blame

        lines += format_blame(headline)
    lines.append(
        "  verdict: converged" if passed else
        f"  verdict: NOT converged (thresholds: R-hat <= {rhat_max}, ESS >= {ess_min:.0f}, "
        "no divergences); try more --warmup/--draws or see `bayesirt diagnose`"
    )
    return "\n".join(lines), passed
