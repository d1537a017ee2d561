import json
import os

import numpy as np
import pytest

from bayesirt.posteriors import (
    FLAT_CONSTANTS,
    FLAT_VARIABLES,
    SCHEMA_VERSION,
    available_engines,
    flat_arrays,
    load,
    save,
    to_datatree,
)
from bayesirt.posteriors.flat import thin_indices
from bayesirt.posteriors.synthetic import synthetic_fit

ENGINES = ["netcdf4", "h5netcdf"]


@pytest.fixture
def fit():
    return synthetic_fit(np.random.default_rng(0), n_models=6, n_items=20, n_benchmarks=2,
                         chains=2, draws=30)


@pytest.mark.parametrize("engine", ENGINES)
def test_round_trip_values_coords_attrs(fit, tmp_path, engine):
    if engine not in available_engines():
        pytest.skip(f"NetCDF engine {engine} not installed (h5netcdf needs h5py)")
    path = save(fit, tmp_path / "post.nc", engine=engine)
    tree = load(path, engine=engine)
    assert set(tree.children) == {"posterior", "sample_stats", "observed_data",
                                  "constant_data", "log_likelihood"}
    post = tree["posterior"]
    for name, arr in fit.posterior.items():
        np.testing.assert_array_equal(post[name].values, arr)
        assert post[name].dims[:2] == ("chain", "draw")
    assert post["ability"].dims == ("chain", "draw", "model", "benchmark")
    assert list(post["ability"].coords["model"].values) == fit.coords["model"]
    assert list(post["difficulty"].coords["item"].values) == fit.coords["item"]
    np.testing.assert_array_equal(tree["sample_stats"]["diverging"].values,
                                  fit.sample_stats["diverging"])
    np.testing.assert_array_equal(tree["observed_data"]["response"].values,
                                  fit.observed["response"])
    np.testing.assert_array_equal(tree["constant_data"]["item_idx"].values,
                                  fit.constant_data["item_idx"])
    np.testing.assert_allclose(tree["log_likelihood"]["response"].values, fit.log_likelihood)
    assert tree.attrs["bayesirt_schema_version"] == SCHEMA_VERSION
    assert json.loads(tree.attrs["config"]) == fit.config
    assert tree.attrs["model_name"] == fit.model_name
    assert tree.attrs["chains"] == 2 and tree.attrs["draws"] == 30
    assert tree.attrs["fingerprint"] == "0" * 64
    tree.close()


def test_no_log_likelihood_group_when_absent(fit, tmp_path):
    from dataclasses import replace

    tree = load(save(replace(fit, log_likelihood=None), tmp_path / "p.nc"))
    assert "log_likelihood" not in tree.children


def test_item_coords_cut_to_fitted_items(fit):
    from dataclasses import replace

    coords = dict(fit.coords, item=fit.coords["item"] + ["new:1", "new:2"])
    tree = to_datatree(replace(fit, coords=coords))
    assert tree["posterior"]["difficulty"].sizes["item"] == 20


def test_mismatched_coords_rejected(fit):
    from dataclasses import replace

    coords = dict(fit.coords, benchmark=["a", "b", "c"])
    with pytest.raises(ValueError, match="benchmark"):
        to_datatree(replace(fit, coords=coords))


def test_compression_shrinks_file(tmp_path):
    fit = synthetic_fit(np.random.default_rng(1), n_models=10, n_items=200, chains=2, draws=100)
    small = save(fit, tmp_path / "c.nc", compress=True)
    big = save(fit, tmp_path / "u.nc", compress=False)
    assert os.path.getsize(small) < os.path.getsize(big)


def test_atomic_write_leaves_nothing_on_failure(fit, tmp_path, monkeypatch):
    import xarray as xr

    def boom(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", boom)
    with pytest.raises(OSError, match="No space"):
        save(fit, tmp_path / "post.nc")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file_on_failure(fit, tmp_path, monkeypatch):
    import xarray as xr

    path = save(fit, tmp_path / "post.nc")
    before = path.read_bytes()
    monkeypatch.setattr(xr.DataTree, "to_netcdf",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save(fit, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["post.nc"]


def test_load_rejects_non_posterior(tmp_path):
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"hello world, not netcdf")
    with pytest.raises(ValueError, match="not a netCDF4/HDF5"):
        load(junk)


def test_load_rejects_foreign_netcdf(tmp_path):
    import xarray as xr

    path = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("a", np.arange(3))}).to_netcdf(path, engine=available_engines()[0])
    with pytest.raises(ValueError, match="not a bayesirt posterior"):
        load(path)


def test_load_rejects_newer_schema(fit, tmp_path):
    tree = to_datatree(fit)
    tree.attrs["bayesirt_schema_version"] = SCHEMA_VERSION + 1
    path = save(tree, tmp_path / "new.nc")
    with pytest.raises(ValueError, match="newer"):
        load(path)


def test_load_rejects_truncated(fit, tmp_path):
    path = save(fit, tmp_path / "post.nc")
    data = path.read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load(cut)


def test_load_rejects_flat_file(fit, tmp_path):
    from bayesirt.predictive import PosteriorDraws, save_flat

    flat = tmp_path / "flat.nc"
    save_flat(PosteriorDraws.from_arrays(**flat_arrays(to_datatree(fit))), flat)
    with pytest.raises(ValueError, match="NetCDF3"):
        load(flat)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nope.nc")


def test_thin_indices_even_and_deterministic():
    idx = thin_indices(100, 10)
    assert len(idx) == 10 and idx[0] == 0 and idx[-1] == 99
    assert np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(idx, thin_indices(100, 10))
    assert len(thin_indices(5, 10)) == 5
    r = thin_indices(100, 10, np.random.default_rng(0))
    assert len(np.unique(r)) == 10
    with pytest.raises(ValueError):
        thin_indices(100, 0)


def test_flat_arrays_layout(fit, tmp_path):
    from bayesirt.predictive import PosteriorDraws
    from bayesirt.predictive.draws import CONST_VARS, DRAW_VARS

    # The names posteriors knows are the runtime's (posteriors does not import predictive).
    assert set(FLAT_VARIABLES) == set(DRAW_VARS) and set(FLAT_CONSTANTS) == set(CONST_VARS)
    out = flat_arrays(save(fit, tmp_path / "post.nc"), max_draws=25)
    assert out["model_ids"] == fit.coords["model"]
    assert out["benchmark_ids"] == fit.coords["benchmark"]
    assert out["ability"].shape == (25, 6, 2) and out["ability"].dtype == np.float32
    assert out["item_benchmark"].dtype == np.int32
    flat = fit.posterior["ability"].reshape(60, 6, 2)  # 2 chains x 30 draws, chain order
    keep = thin_indices(60, 25)
    np.testing.assert_array_equal(out["ability"], flat[keep].astype(np.float32))
    assert keep[0] == 0 and keep[-1] == 59  # both chains contribute
    # Only what the runtime reads: no obs-level constants, no log-likelihood.
    assert "item_idx" not in out and "model_idx" not in out and "log_likelihood" not in out
    attrs = out["attrs"]
    assert attrs["model_name"] == "synthetic_2pl" and attrs["config"] == fit.config
    assert attrs["n_chains"] == 2 and attrs["n_draws"] == 30 and attrs["created_at"]
    draws = PosteriorDraws.from_arrays(**out)  # the keys are from_arrays' arguments
    assert draws.n_draws == 25 and draws.attrs["fingerprint"] == attrs["fingerprint"]
    rnd = flat_arrays(to_datatree(fit), max_draws=25, rng=np.random.default_rng(0))
    assert rnd["ability"].shape == (25, 6, 2) and not np.array_equal(rnd["ability"],
                                                                   out["ability"])
    with pytest.raises(ValueError, match="max_draws"):
        flat_arrays(to_datatree(fit), max_draws=0)


def test_posteriors_does_not_import_predictive():
    """Data flow one way: posteriors -> predictive (the runtime is shipped alone)."""
    import ast
    from pathlib import Path

    import bayesirt.posteriors

    for path in Path(bayesirt.posteriors.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert "predictive" not in (node.module or ""), path.name
            elif isinstance(node, ast.Import):
                assert not any("predictive" in a.name for a in node.names), path.name
