"""NUTS runner: configuration, device choice, chains, seeds, progress, convergence summary."""

from bayesirt.inference.headline import convergence_headline, fit_summary, format_headline
from bayesirt.inference.nuts import FitConfig, fit
from bayesirt.inference.result import FitResult

__all__ = ["FitConfig", "FitResult", "convergence_headline", "fit", "fit_summary",
           "format_headline"]
