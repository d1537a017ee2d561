"""Posterior artifacts: one NetCDF DataTree per fit, and its arrays for the predictive runtime.

``save``/``load`` write and read the full posterior (ArviZ 1.x DataTree in a netCDF4/HDF5
file, groups ``posterior``, ``sample_stats``, ``observed_data``, ``constant_data`` and
optionally ``log_likelihood``); ``flat_arrays`` converts it, in memory, into the plain arrays
of ``bayesirt.predictive.PosteriorDraws.from_arrays`` (whose ``save_flat`` writes the
numpy+scipy readable file the competition submission ships). Nothing here imports
``bayesirt.predictive``: data flow from posteriors to predictive.
"""

from bayesirt.posteriors.flat import FLAT_CONSTANTS, FLAT_VARIABLES, flat_arrays, thin_indices
from bayesirt.posteriors.io import (
    SCHEMA_VERSION,
    available_engines,
    load,
    posterior_attrs,
    save,
    to_datatree,
)

__all__ = [
    "FLAT_CONSTANTS",
    "FLAT_VARIABLES",
    "SCHEMA_VERSION",
    "available_engines",
    "flat_arrays",
    "load",
    "posterior_attrs",
    "save",
    "thin_indices",
    "to_datatree",
]
