"""Compare a batch's fits: PSIS-LOO by ArviZ, held-out metrics, verdicts, seed-to-seed spread.

Fits are grouped by the fingerprint of their data: LOO compares fits on the same data only
(elpd of different data sets are different quantities). Within a group every fit that kept
its pointwise log-likelihood gets ``arviz_stats.loo`` on its posterior DataTree, and the
group gets ``arviz_stats.compare`` (stacking weights, elpd difference to the best fit and
its paired se). Fits that differ only in the seed form a *variant*; the spread of their
headline numbers says how much of a difference between variants is Monte Carlo noise.
Everything returned is plain JSON (numbers, strings, lists, dicts).
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bayesirt.batch.files import FAILED, POSTERIOR, SUMMARY, read_json
from bayesirt.errors import InputError

#: Numbers whose seed-to-seed spread is reported: (key in a fit row, label).
SPREAD_METRICS = (("elpd", "elpd_loo"), ("log_loss", "held-out log-loss"),
                  ("auc", "held-out AUC"), ("brier", "held-out Brier"),
                  ("rhat_max", "R-hat max"), ("ess_bulk_min", "bulk-ESS min"),
                  ("wall_seconds", "wall s"))


def collect(batch_dir: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """Read every fit folder of a batch.

    Parameters
    ----------
    batch_dir : path-like
        A folder written by ``bayesirt batch``.

    Returns
    -------
    (finished, failed) : lists of dict
        ``summary.json`` contents of finished fits (with ``folder``), and the
        ``failed.json`` records of fits that have no finished summary.

    Raises
    ------
    InputError
        If the folder does not exist or holds no fit.
    """
    root = Path(batch_dir)
    if not root.is_dir():
        raise InputError(f"{root}: no such batch folder" if not root.exists()
                         else f"{root}: is not a folder")
    finished, failed = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        summary = read_json(folder / SUMMARY)
        if summary is not None and summary.get("status") == "ok":
            finished.append({**summary, "folder": str(folder)})
            continue
        record = read_json(folder / FAILED)
        if record is not None:
            failed.append({"name": record.get("name", folder.name),
                           "label": record.get("label", ""),
                           "error": record.get("error", "?"), "folder": str(folder)})
        elif (folder / POSTERIOR).exists() or (folder / SUMMARY).exists():
            failed.append({"name": folder.name, "label": "", "folder": str(folder),
                           "error": "incomplete output (no readable summary.json)"})
    if not finished and not failed:
        raise InputError(f"{root}: holds no batch fits (no */summary.json or */failed.json)")
    return finished, failed


def _sampler(config: dict[str, Any]) -> str:
    return f"{config['chains']}x({config['warmup']}+{config['draws']})"


def _fit_row(summary: dict[str, Any]) -> dict[str, Any]:
    """Return the per-fit numbers shown on the page."""
    head, config = summary["headline"], summary["config"]
    held = summary.get("heldout") or {}
    return {
        "name": summary["name"], "label": summary["label"], "variant": summary["variant"],
        "model": config["model"], "seed": config["seed"], "sampler": _sampler(config),
        "passed": bool(summary["passed"]), "verdict": summary["verdict"],
        "rhat_max": head.get("rhat_max"), "ess_bulk_min": head.get("ess_bulk_min"),
        "ess_tail_min": head.get("ess_tail_min"), "divergences": head.get("divergences"),
        "tree_depth_hits": head.get("tree_depth_hits"),
        "log_loss": held.get("log_loss"), "auc": held.get("auc"), "brier": held.get("brier"),
        "heldout_n": held.get("n"), "heldout_error": summary.get("heldout_error"),
        "wall_seconds": summary.get("wall_seconds"),
        "has_log_likelihood": bool(summary.get("has_log_likelihood")),
        "folder": summary["folder"],
    }


def _loo(path: Path) -> tuple[Any, list[str]]:
    """PSIS-LOO of one posterior file (pointwise, for paired differences) and its warnings."""
    from arviz_stats import loo

    from bayesirt.posteriors import load

    tree = load(path)
    try:
        if "log_likelihood" not in tree.children:
            raise InputError("no log_likelihood group (fit with log_likelihood = true)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = loo(tree, pointwise=True)
    finally:
        tree.close()
    return result, sorted({" ".join(str(w.message).split()) for w in caught})


def _pareto(result: Any) -> dict[str, Any]:
    k = np.asarray(result.pareto_k).ravel()
    good = float(result.good_k)
    return {"good_k": good, "n": int(k.size), "n_good": int((k <= good).sum()),
            "n_bad": int(((k > good) & (k <= 1)).sum()), "n_very_bad": int((k > 1).sum()),
            "k_max": float(np.nanmax(k)) if k.size else None}


def _loo_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """LOO of each fit with a log-likelihood, and ArviZ's comparison of them."""
    from arviz_stats import compare

    results, skipped, notes = {}, [], []
    seen: dict[str, list[str]] = {}  # warning text -> fits that raised it
    for row in rows:
        if not row["has_log_likelihood"]:
            skipped.append({"name": row["name"], "reason": "fitted without log_likelihood"})
            continue
        try:
            result, caught = _loo(Path(row["folder"]) / POSTERIOR)
        except (ValueError, OSError) as exc:
            skipped.append({"name": row["name"], "reason": " ".join(str(exc).split())})
            continue
        results[row["name"]] = result
        for text in caught:
            seen.setdefault(text, []).append(row["name"])
        row.update(elpd=float(result.elpd), se=float(result.se), p_loo=float(result.p),
                   pareto_k=_pareto(result))
    notes += [f"{', '.join(names)}: {text}" for text, names in seen.items()]
    table = []
    if len(results) >= 2:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = compare(results, round_to="none")
        notes += sorted({" ".join(str(w.message).split()) for w in caught})
        for name, rec in frame.iterrows():
            table.append({"name": str(name), "rank": int(rec["rank"]),
                          "elpd": float(rec["elpd"]), "se": float(rec["se"]),
                          "p_loo": float(rec["p"]), "elpd_diff": float(rec["elpd_diff"]),
                          "dse": float(rec["dse"]), "weight": float(rec["weight"]),
                          "p_worse": (None if rec.get("p_worse") is None
                                      or np.isnan(rec["p_worse"]) else float(rec["p_worse"])),
                          "diag_diff": str(rec.get("diag_diff") or ""),
                          "diag_elpd": str(rec.get("diag_elpd") or "")})
    elif len(results) == 1:
        (name, result), = results.items()
        table.append({"name": name, "rank": 0, "elpd": float(result.elpd),
                      "se": float(result.se), "p_loo": float(result.p), "elpd_diff": 0.0,
                      "dse": 0.0, "weight": 1.0, "p_worse": None, "diag_diff": "",
                      "diag_elpd": ""})
    by_name = {row["name"]: row for row in rows}
    for entry in table:
        row = by_name[entry["name"]]
        entry.update(label=row["label"], seed=row["seed"], pareto_k=row["pareto_k"])
    return {"table": table, "not_compared": skipped, "warnings": notes,
            "method": "PSIS-LOO (arviz_stats.loo), stacking weights (arviz_stats.compare)"}


def _stats(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {"n": int(arr.size), "mean": float(arr.mean()),
            "sd": float(arr.std(ddof=1)) if arr.size > 1 else None,
            "min": float(arr.min()), "max": float(arr.max()),
            "range": float(arr.max() - arr.min())}


def _seed_spread(rows: list[dict[str, Any]], names: dict[str, str]) -> list[dict[str, Any]]:
    """Spread of the headline numbers over fits equal but for the seed."""
    variants: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        variants.setdefault(row["variant"], []).append(row)
    out = []
    for variant, members in variants.items():
        if len(members) < 2:
            continue
        metrics = {}
        for key, _ in SPREAD_METRICS:
            values = [m[key] for m in members if m.get(key) is not None
                      and np.isfinite(m[key])]
            if len(values) >= 2:
                metrics[key] = _stats(values)
        out.append({"variant": variant, "label": names[variant],
                    "seeds": sorted(m["seed"] for m in members),
                    "n_converged": sum(m["passed"] for m in members), "metrics": metrics})
    return out


def _display_names(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Variant -> label; the sampler settings are added where two variants share a label."""
    labels: dict[str, set[str]] = {}
    for row in rows:
        labels.setdefault(row["label"], set()).add(row["variant"])
    return {row["variant"]: (row["label"] if len(labels[row["label"]]) == 1
                             else f"{row['label']} {row['sampler']}") for row in rows}


def compare_batch(batch_dir: str | os.PathLike) -> dict[str, Any]:
    """Everything ``bayesirt compare`` shows, as plain JSON.

    Parameters
    ----------
    batch_dir : path-like
        A folder written by ``bayesirt batch``.

    Returns
    -------
    dict
        ``batch_dir``, ``created_at``, counts (``n_fits``, ``n_ok``, ``n_failed``),
        ``groups`` (one per data fingerprint: ``data``, ``data_fingerprint``, ``fits``
        rows, ``loo`` with ``table``/``not_compared``/``warnings``, ``seed_spread``) and
        ``failed`` (name, label, error of each failed fit).

    Raises
    ------
    InputError
        If ``batch_dir`` is not a batch folder.
    """
    finished, failed = collect(batch_dir)
    groups: dict[str, list[dict[str, Any]]] = {}
    for summary in finished:
        groups.setdefault(summary["data_fingerprint"], []).append(summary)
    out_groups = []
    for fingerprint, members in groups.items():
        rows = [_fit_row(s) for s in members]
        for row in rows:
            row.update(elpd=None, se=None, p_loo=None, pareto_k=None)
        names = _display_names(rows)
        for row in rows:
            row["display"] = names[row["variant"]]
        loo = _loo_table(rows)
        out_groups.append({"data": members[0]["data"], "data_fingerprint": fingerprint,
                           "fits": rows, "loo": loo,
                           "seed_spread": _seed_spread(rows, names)})
    return {"batch_dir": str(Path(batch_dir).resolve()),
            "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "n_fits": len(finished) + len(failed), "n_ok": len(finished),
            "n_failed": len(failed), "groups": out_groups, "failed": failed}


def text_table(result: dict[str, Any]) -> str:
    """Format the LOO and held-out table of each data group as Markdown."""
    lines = []
    for group in result["groups"]:
        lines += [f"data {group['data']} (fingerprint {group['data_fingerprint'][:12]})", "",
                  "| fit | elpd_loo | se | elpd_diff | dse | weight | Pareto k > good | "
                  "held-out log-loss | AUC | Brier | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        by_name = {row["name"]: row for row in group["fits"]}
        ranked = [by_name[e["name"]] | e for e in group["loo"]["table"]]
        rest = [row for row in group["fits"] if row["name"] not in
                {e["name"] for e in group["loo"]["table"]}]
        for row in ranked + rest:
            k = row.get("pareto_k") or {}
            cells = [row["name"], _f(row.get("elpd"), 1), _f(row.get("se"), 1),
                     _f(row.get("elpd_diff"), 1), _f(row.get("dse"), 1),
                     _f(row.get("weight"), 3),
                     "" if not k else str(k["n_bad"] + k["n_very_bad"]),
                     _f(row["log_loss"], 4), _f(row["auc"], 4), _f(row["brier"], 4),
                     "converged" if row["passed"] else "NOT converged"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for rec in result["failed"]:
        lines.append(f"failed: {rec['name']}: {rec['error']}")
    return "\n".join(lines).rstrip() + "\n"


def _f(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"
