r"""Models the posterior does not know: how a caller describes them, and their ability prior.

A model unknown to the posterior has, within each draw, the general-ability prior
:math:`\\eta \\sim N(z^\\top\\beta + \\gamma_{org}, \\tau^2)` when the posterior was fitted
with metadata (``bayesirt fit --metadata``): ``z`` its features encoded exactly as the
training models' (:mod:`bayesirt.features`, with the posterior's centre and scale), an
unknown or missing organisation getting the population mean 0 and missing fields their
missingness indicators. Without metadata in the posterior, :math:`\\eta \\sim N(0, 1)`.
On a benchmark ``k`` its ability is then :math:`\\rho_k\\eta + \\sqrt{1 - \\rho_k^2}\\,
\\varepsilon`, i.e. :math:`N(\\rho_k m, \\rho_k^2 v + 1 - \\rho_k^2)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..features import model_features, org_index
from .draws import PosteriorDraws

__all__ = ["ModelInfo", "general_ability_prior"]


@dataclass(frozen=True)
class ModelInfo:
    """How a caller describes a model the posterior does not know (every field optional).

    Attributes
    ----------
    org : str
        Its organisation (``""``: unknown).
    param_count : float
        Parameters (NaN: unknown).
    is_instruct : float
        1.0 instruct / chat, 0.0 base, NaN unknown.
    release_year : float
        Release date as a fractional year (``bayesirt.data.parse_release_date``), NaN unknown.
    """

    org: str = ""
    param_count: float = math.nan
    is_instruct: float = math.nan
    release_year: float = math.nan


def general_ability_prior(draws: PosteriorDraws, model_ids: Sequence[str],
                          infos: Mapping[str, ModelInfo] | None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Prior mean and variance of each listed model's general ability, per draw.

    Parameters
    ----------
    draws : PosteriorDraws
    model_ids : sequence of str, length n
        Models unknown to the posterior.
    infos : mapping of str to ModelInfo, optional
        Their metadata; a model without an entry has every field unknown.

    Returns
    -------
    mean, var : ndarray, shape (S, n)

    Raises
    ------
    TypeError
        When an ``infos`` value is not a :class:`ModelInfo`.
    """
    S, n = draws.n_draws, len(model_ids)
    if draws.metadata_coef is None or n == 0:
        return np.zeros((S, n)), np.ones((S, n))
    infos = dict(infos or {})
    rows = []
    for m in model_ids:
        info = infos.get(m, ModelInfo())
        if not isinstance(info, ModelInfo):
            raise TypeError(f"new_models[{m!r}] must be a ModelInfo, got {type(info)}")
        rows.append(info)
    z, _, _ = model_features(
        np.asarray([r.param_count for r in rows], dtype=np.float64),
        np.asarray([r.is_instruct for r in rows], dtype=np.float64),
        np.asarray([r.release_year for r in rows], dtype=np.float64),
        draws.metadata_center, draws.metadata_scale)
    if not np.all(np.isfinite(z)):
        raise InputError("new model metadata gave non-finite features (param_count <= 0?)")
    mean = draws.metadata_coef @ z.T  # (S, n)
    if draws.org_effect is not None and draws.org_ids:
        org = org_index([r.org for r in rows], draws.org_ids)
        effect = np.concatenate([draws.org_effect, np.zeros((S, 1))], axis=1)
        mean = mean + effect[:, np.where(org < 0, len(draws.org_ids), org)]
    var = np.repeat(draws.ability_residual_scale[:, None] ** 2, n, axis=1)
    return mean, var
