"""bayesirt: hierarchical Bayesian IRT for predicting AI models' answers on new items."""

__version__ = "0.1.0"
