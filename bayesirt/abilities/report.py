"""``bayesirt abilities`` end to end: read a posterior, write the table, JSON, plot, summary."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from bayesirt.abilities.files import write_csv, write_json, write_track2
from bayesirt.abilities.stats import check_options
from bayesirt.abilities.table import ability_table, general_draws, p_top_column
from bayesirt.errors import InputError
from bayesirt.posteriors.io import load, posterior_attrs

__all__ = ["FORMATS", "provenance", "run_abilities", "summary_text"]

#: ``table``: the full ability table; ``track2``: the competition's model_id,ability_score.
FORMATS = ("table", "track2")


def provenance(tree: xr.DataTree, path: str | os.PathLike) -> dict[str, Any]:
    """Where a table comes from: the posterior file and the fit that wrote it.

    Parameters
    ----------
    tree : xarray.DataTree
        The loaded posterior.
    path : path-like
        Its file.

    Returns
    -------
    dict
        ``path`` (absolute), ``model_name``, ``fingerprint`` (of the training data),
        ``data_source``, ``created_at``, ``bayesirt_version``, ``chains``, ``draws``, ``seed``
        (None where the file does not say).
    """
    attrs = posterior_attrs(tree)
    out: dict[str, Any] = {"path": os.path.abspath(path)}
    for key in ("model_name", "fingerprint", "data_source", "created_at", "bayesirt_version",
                "chains", "draws", "seed"):
        value = attrs.get(key)
        out[key] = None if value == "" else value
    return out


def _line(row: pd.Series, p_col: str, width: int) -> str:
    ranks = (f"{row['rank_lower']}" if row["rank_lower"] == row["rank_upper"]
             else f"{row['rank_lower']}-{row['rank_upper']}")
    predicted = "" if row["observed"] else "  predicted (no responses)"
    model = row["model"] if len(row["model"]) <= width else row["model"][: width - 1] + "~"
    return (f"  {row['rank']:>4}  {model:<{width}}  {row['mean']:6.2f}  "
            f"[{row['lower']:6.2f}, {row['upper']:6.2f}]  {ranks:>9}  "
            f"{row[p_col]:>{len(p_col)}.2f}{predicted}")


def summary_text(table: pd.DataFrame, *, top_k: int, interval: float, n: int = 5) -> str:
    """Format the top ``n`` models (per benchmark in a by-benchmark table) with intervals.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`bayesirt.abilities.ability_table`.
    top_k : int
        The ``p_top{top_k}`` column shown.
    interval : float
        Mass of the intervals shown (for the heading).
    n : int, default 5

    Returns
    -------
    str
        A few lines for the terminal: rank, model, posterior mean, its central interval,
        the central interval of the rank and ``p_top{top_k}``.
    """
    p_col = p_top_column(top_k)
    groups = ([(None, table)] if "benchmark" not in table.columns
              else list(table.groupby("benchmark", sort=False)))
    width = min(40, max([5, *(len(m) for _, rows in groups for m in rows["model"][:n])]))
    pct = f"{interval:.0%}"
    lines = [f"  {'rank':>4}  {'model':<{width}}  {'mean':>6}  {pct + ' interval':^16}  "
             f"{'rank ' + pct:>9}  {p_col}"]
    for bench, rows in groups:
        if bench is not None:
            lines.append(f" {bench}:")
        lines += [_line(row, p_col, width) for _, row in rows.head(n).iterrows()]
    predicted = int((~table["observed"]).sum())
    if predicted:
        what = "(model, benchmark) cells" if "benchmark" in table.columns else "models"
        lines.append(f"{predicted} {what} have no responses: their ability is predicted "
                     "through the general ability (observed = False), not measured")
    return "\n".join(lines)


def run_abilities(
    posterior_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    by_benchmark: bool = False,
    fmt: str = "table",
    top_k: int = 10,
    interval: float = 0.9,
    json_out: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    echo: Callable[[str], Any] | None = print,
) -> Path:
    """Write a posterior's ability table (or track-2 scores), and optionally JSON and a plot.

    Parameters
    ----------
    posterior_path : path-like
        A posterior written by ``bayesirt fit`` (any registered model).
    out : path-like
        CSV to write: the ability table (``fmt="table"``) or ``model_id,ability_score``
        (``fmt="track2"``, the posterior mean of the general ability).
    by_benchmark : bool, default False
        One row per (model, benchmark), ranked within each benchmark.
    fmt : {"table", "track2"}
    top_k : int, default 10
    interval : float, default 0.9
    json_out : path-like, optional
        Also write the table's rows as JSON records with the posterior's provenance.
    plot : path-like, optional
        Also write the ranked forest of the general ability (PNG).
    echo : callable or None, default print
        Receives the summary lines; None prints nothing.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    InputError
        A file that is not a bayesirt posterior, a posterior without the ability
        variables, or a bad option; the message names the file or value.
    """
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "track2" and by_benchmark:
        raise InputError("format 'track2' scores one ability per model: drop by_benchmark "
                         "(--by-benchmark)")
    check_options(interval, top_k)
    tree = load(posterior_path)  # refuses anything that is not a bayesirt posterior
    try:
        try:
            table = ability_table(tree, by_benchmark=by_benchmark, top_k=top_k,
                                  interval=interval)
            if plot is not None:
                names, draws = general_draws(tree)
                # The forest greys models without responses: per-model counts, also when
                # the table itself is by benchmark.
                per_model = table if not by_benchmark else ability_table(
                    tree, top_k=top_k, interval=interval)
        except InputError as exc:
            raise InputError(f"{posterior_path}: {exc}") from None
        prov = provenance(tree, posterior_path)
    finally:
        tree.close()
    if fmt == "track2":
        write_track2(table, out)
    else:
        write_csv(table, out)
    if json_out is not None:
        write_json(table, json_out, provenance=prov,
                   options={"by_benchmark": by_benchmark, "top_k": top_k, "interval": interval,
                            "format": fmt})
    if plot is not None:
        from bayesirt.abilities.plot import save_forest  # matplotlib only when plotting

        observed = dict(zip(per_model["model"], per_model["observed"], strict=True))
        save_forest(plot, names, draws, [observed[m] for m in names], interval=interval,
                    title=f"general ability, {prov['model_name'] or '?'} posterior: "
                          f"{len(names)} models ranked by posterior mean")
    if echo is not None:
        unit = "(model, benchmark) cells" if by_benchmark else "models"
        echo(f"abilities of {len(table):,} {unit} written to {out} "
             f"({'track2 scores' if fmt == 'track2' else 'table'}; "
             f"{prov['model_name'] or '?'} posterior)")
        echo(summary_text(table, top_k=top_k, interval=interval))
        for path, what in ((json_out, "JSON"), (plot, "plot")):
            if path is not None:
                echo(f"{what} written to {path}")
    return Path(out)
