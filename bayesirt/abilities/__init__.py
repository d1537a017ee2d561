"""Ability scores of a saved posterior: means, intervals, ranks and top-k probabilities.

Reads saved posteriors only (xarray, numpy, pandas; matplotlib for the plot), never JAX:
like :mod:`bayesirt.diagnostics`' readers it works on any machine that has the file.

``ability_table`` gives one row per model (general ability ``theta``) or per (model,
benchmark) (``ability``, ranked within each benchmark) with ``mean``, ``sd``, the central
interval ``lower``/``upper``, ``n_responses``, ``observed`` (False: no responses, the
ability is *predicted* through the general ability), ``rank`` with its interval
``rank_lower``/``rank_upper`` and ``p_top{k}``. ``write_csv``/``read_csv`` round-trip it
exactly; ``write_track2`` writes the competition's ``model_id,ability_score``;
``run_abilities`` is what ``bayesirt abilities`` runs.

Layout: ``stats`` (numpy only: ranks, intervals, counts), ``table`` (labelled DataFrame),
``files`` (CSV, track 2, JSON), ``plot`` (ranked forest), ``report`` (orchestration).
"""

from bayesirt.abilities.files import (
    TRACK2_HEADER,
    read_csv,
    records,
    write_csv,
    write_json,
    write_track2,
)
from bayesirt.abilities.report import FORMATS, provenance, run_abilities, summary_text
from bayesirt.abilities.stats import draw_ranks, rank_summary, response_counts
from bayesirt.abilities.table import COLUMNS, ability_table, general_draws, p_top_column

__all__ = [
    "COLUMNS",
    "FORMATS",
    "TRACK2_HEADER",
    "ability_table",
    "draw_ranks",
    "general_draws",
    "p_top_column",
    "provenance",
    "rank_summary",
    "read_csv",
    "records",
    "response_counts",
    "run_abilities",
    "summary_text",
    "write_csv",
    "write_json",
    "write_track2",
]
