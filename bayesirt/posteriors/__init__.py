"""Posterior artifacts: one NetCDF DataTree per fit, and the flat NetCDF3 file for the bundle.

``save``/``load`` write and read the full posterior (ArviZ 1.x DataTree in a netCDF4/HDF5
file, groups ``posterior``, ``sample_stats``, ``observed_data``, ``constant_data`` and
optionally ``log_likelihood``); ``write_flat`` writes the numpy+scipy readable artifact that
the competition submission ships. Nothing here imports JAX.
"""

from bayesirt.posteriors.flat import FLAT_SCHEMA_VERSION, FLAT_VARIABLES, write_flat
from bayesirt.posteriors.io import (
    SCHEMA_VERSION,
    available_engines,
    load,
    posterior_attrs,
    save,
    to_datatree,
)

__all__ = [
    "FLAT_SCHEMA_VERSION",
    "FLAT_VARIABLES",
    "SCHEMA_VERSION",
    "available_engines",
    "load",
    "posterior_attrs",
    "save",
    "to_datatree",
    "write_flat",
]
