"""Ranked forest plot of the general ability: one row per model, best on top.

House style of :mod:`bayesirt.diagnostics.plots` (96 DPI, 8.5 pt labels, 0.2 inch per
model row, constrained layout), drawn on a bare :class:`~matplotlib.figure.Figure` with
the Agg canvas: no pyplot, so importing this module never switches the backend of a
notebook or leaves figures open. (The diagnostics module is not imported for its
constants: importing it starts JAX.)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bayesirt.errors import InputError
from bayesirt.posteriors.io import atomic_path

__all__ = ["ROW_IN", "forest_figure", "save_forest"]

DPI = 96
SMALL = 8.5
LABEL = 9.0
TITLE = 10.0
#: Height (inches) of one model row: 0.2 in = 14.4 pt, room for an 8.5 pt label.
ROW_IN = 0.2
#: Height (inches) of title, axis labels and margins, whatever the number of models.
MARGIN_IN = 1.4
#: Width (inches) of the data area; the label column is added to it, up to MAX_WIDTH_IN.
DATA_WIDTH_IN = 5.0
MAX_WIDTH_IN = 11.0
#: Approximate width (inches) of one label character at SMALL points.
_CHAR_IN = 0.065
_LABEL_CHARS = 40


def _short(label: str) -> str:
    # Long ids would squeeze the axes to nothing; the CSV keeps them whole.
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "\u2026"


def forest_figure(names: list[str], draws: np.ndarray, observed: np.ndarray, *,
                  interval: float = 0.9, title: str = "general ability") -> Figure:
    """Draw the ranked forest: dot = posterior mean, thick bar = 50%, thin = ``interval``.

    Parameters
    ----------
    names : list of str, length n_models
    draws : ndarray, shape (n_draws, n_models)
        Draws of the general ability.
    observed : ndarray of bool, shape (n_models,)
        Models with responses; the others (ability from the prior alone) are drawn grey.
    interval : float, default 0.9
        Mass of the thin bar.
    title : str
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Height :data:`ROW_IN` per model plus :data:`MARGIN_IN` (30 models: 7.4 in,
        150 models: 31.4 in), width growing with the longest label up to
        :data:`MAX_WIDTH_IN`, with an Agg canvas attached.

    Raises
    ------
    InputError
        If the shapes disagree.
    """
    x = np.asarray(draws, dtype=np.float64)
    n = len(names)
    if x.ndim != 2 or x.shape[1] != n or np.shape(observed) != (n,):
        raise InputError(f"forest: {n} names, draws {x.shape}, observed {np.shape(observed)} "
                         "disagree")
    alpha = (1.0 - interval) / 2.0
    mean = x.mean(axis=0)
    lo, q25, q75, hi = np.quantile(x, [alpha, 0.25, 0.75, 1.0 - alpha], axis=0)
    order = np.argsort(-mean, kind="stable")  # the table's rank order: best first
    seen = np.asarray(observed, dtype=bool)[order]
    y = np.arange(n)
    labels = [f"{r}. {_short(names[i])}" for r, i in enumerate(order, start=1)]
    # Long ids widen the figure instead of squeezing the intervals.
    width = min(MAX_WIDTH_IN, DATA_WIDTH_IN + 0.4 + _CHAR_IN * max(map(len, labels), default=0))

    fig = Figure(figsize=(width, ROW_IN * n + MARGIN_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for mask, colour, face in ((seen, "tab:blue", "k"), (~seen, "0.65", "white")):
        ax.hlines(y[mask], lo[order][mask], hi[order][mask], color=colour, lw=1.0)
        ax.hlines(y[mask], q25[order][mask], q75[order][mask], color=colour, lw=3.5)
        ax.plot(mean[order][mask], y[mask], "o", ms=3.5, mfc=face, mec="k" if face == "k"
                else "0.5", zorder=3, ls="none")
    ax.axvline(0.0, color="0.6", lw=0.8, ls=":")
    ax.set_yticks(y, labels, fontsize=SMALL)
    ax.set_ylim(n - 0.4, -0.6)  # best model on top
    ax.grid(axis="x", color="0.92", lw=0.8)
    ax.set_axisbelow(True)
    # Ticks on top as well: with 150 models the bottom axis is a long scroll away.
    ax.tick_params(axis="x", labelsize=SMALL, top=True, labeltop=n > 40)
    ax.set_title(title, fontsize=TITLE)
    note = "" if seen.all() else "\ngrey: models without responses (ability from the prior only)"
    ax.set_xlabel(f"ability: posterior mean (dot), 50% (thick) and {interval:.0%} (thin) "
                  f"central intervals{note}", fontsize=LABEL)
    return fig


def save_forest(path: str | os.PathLike, names: list[str], draws: np.ndarray,
                observed: np.ndarray, *, interval: float = 0.9,
                title: str = "general ability") -> Path:
    """Draw :func:`forest_figure` and write it as a PNG (atomically).

    Parameters
    ----------
    path : path-like
        PNG file to write.
    names, draws, observed, interval, title
        As :func:`forest_figure`.

    Returns
    -------
    pathlib.Path
    """
    fig = forest_figure(names, draws, observed, interval=interval, title=title)
    with atomic_path(path) as tmp:
        # format given explicitly: the temporary name's suffix is .tmp, not .png.
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)
