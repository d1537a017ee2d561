"""The workflow as a Python API: the same steps the CLI runs, for notebooks and scripts.

Data flows one way: ``bayesirt.data`` -> ``bayesirt.inference`` -> ``bayesirt.posteriors``
-> ``bayesirt.predictive`` -> ``bayesirt.submission``. This module only strings those calls
together; it holds no statistics of its own. :mod:`.core` holds the steps of one fit
(load, fit, save, predict, acquire, bundle), :mod:`.demo` the demo, :mod:`.reports` the
workflows over saved posteriors (batch, compare, abilities, heldout).

Example
-------
>>> import jax
>>> from bayesirt import pipeline
>>> data = pipeline.load_data("path/to/data")                      # doctest: +SKIP
>>> result = pipeline.fit(jax.random.key(0), data, model="hier2pl")  # doctest: +SKIP
>>> pipeline.save_posterior(result, "posterior.nc")                # doctest: +SKIP
>>> table = pipeline.predict("posterior.nc", "path/to/data/test")    # doctest: +SKIP
"""

from bayesirt.pipeline.core import (
    acquire,
    bundle,
    check_bundle_posterior,
    expected_posterior_bytes,
    fit,
    fit_and_save,
    load_data,
    load_draws,
    predict,
    save_posterior,
)
from bayesirt.pipeline.demo import DEMO_STREAMING_BENCHMARK, demo
from bayesirt.pipeline.reports import abilities, batch, compare, heldout

__all__ = [
    "DEMO_STREAMING_BENCHMARK", "abilities", "acquire", "batch", "bundle",
    "check_bundle_posterior", "compare", "demo", "expected_posterior_bytes", "fit",
    "fit_and_save", "heldout", "load_data", "load_draws", "predict", "save_posterior",
]
