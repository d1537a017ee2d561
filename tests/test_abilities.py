"""bayesirt abilities: ability tables of real (tiny) fits of every registered model.

One simulated data set in which some (model, benchmark) cells have no responses is fitted
by each model in ``bayesirt.models.MODELS`` (a few seconds each, compile time mostly); the
tables are checked against what the simulation knows (which cells were evaluated, how many
items each holds) and against the invariants of a ranking.
"""

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bayesirt import abilities, pipeline
from bayesirt.abilities.plot import ROW_IN, save_forest
from bayesirt.errors import InputError
from bayesirt.models import MODELS
from bayesirt.posteriors import load, save

ITEMS = (6, 6, 6)
N_MODELS = 10
TOP_K = 3


def cli(*args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "bayesirt.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def simulated():
    from bayesirt.models.simulate import simulate

    data, truth = simulate(np.random.default_rng(3), "hier2pl", n_models=N_MODELS,
                           items_per_benchmark=ITEMS, coverage=0.6)
    # The point of the data set: some cells are unobserved, so abilities there are predicted.
    assert 0 < (~truth["observed_cell"]).sum() < truth["observed_cell"].size
    return data, truth


@pytest.fixture(scope="module")
def posterior_of(simulated, tmp_path_factory):
    """Model name -> posterior file of a tiny real fit of the simulated data (made once)."""
    import jax

    from bayesirt.inference import FitConfig, fit

    cache = {}

    def get(name):
        if name not in cache:
            cfg = FitConfig(model=name, chains=2, warmup=30, draws=50, progress=False)
            # NumPyro's distributions need JAX's default promotion (conftest.numpyro_lenient).
            with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
                result = fit(jax.random.key(11), simulated[0], cfg)
            cache[name] = save(result, tmp_path_factory.mktemp(f"fit-{name}") / "post.nc")
        return cache[name]

    return get


@pytest.fixture(params=sorted(MODELS))
def fitted(request, posterior_of, simulated):
    """(model name, posterior path, simulation truth) for each registered model."""
    return request.param, posterior_of(request.param), simulated[1]


def _tables(path, **kw):
    tree = load(path)
    try:
        return (abilities.ability_table(tree, top_k=TOP_K, **kw),
                abilities.ability_table(tree, by_benchmark=True, top_k=TOP_K, **kw))
    finally:
        tree.close()


def _check_ranking(rows, n):
    """Invariants of one ranking of n models."""
    p_col = f"p_top{TOP_K}"
    assert sorted(rows["rank"]) == list(range(1, n + 1))  # a permutation
    assert list(rows["rank"]) == sorted(rows["rank"])  # sorted by rank
    # rank 1 has the largest posterior mean
    assert np.all(np.diff(rows["mean"].to_numpy()) <= 0)
    assert np.all(rows["lower"] <= rows["mean"]) and np.all(rows["mean"] <= rows["upper"])
    assert np.all(rows["sd"] > 0)
    assert np.all((1 <= rows["rank_lower"]) & (rows["rank_lower"] <= rows["rank_upper"])
                  & (rows["rank_upper"] <= n))
    assert rows[p_col].between(0, 1).all()
    assert rows[p_col].sum() == pytest.approx(min(TOP_K, n), abs=1e-9)


def test_per_model_table(fitted, simulated):
    name, path, truth = fitted
    data, _ = simulated
    table, _ = _tables(path)
    assert len(table) == N_MODELS and set(table["model"]) == set(data.model_ids)
    assert list(table.columns) == [c for c in abilities.COLUMNS if c != "benchmark"] + [
        f"p_top{TOP_K}"]
    _check_ranking(table, N_MODELS)
    # Every evaluated cell holds all items of its benchmark (the simulation's design).
    want = dict(zip(data.model_ids, truth["observed_cell"] @ np.array(ITEMS), strict=True))
    assert dict(zip(table["model"], table["n_responses"], strict=True)) == want
    assert table["observed"].all()  # every simulated model answered something
    assert table["n_responses"].dtype == np.int64 and table["observed"].dtype == bool


def test_by_benchmark_table_marks_predicted_cells(fitted, simulated):
    name, path, truth = fitted
    data, _ = simulated
    _, table = _tables(path)
    assert len(table) == N_MODELS * len(ITEMS)
    assert list(table["benchmark"].unique()) == list(data.benchmark_ids)  # posterior order
    for k, bench in enumerate(data.benchmark_ids):
        rows = table[table["benchmark"] == bench]
        _check_ranking(rows, N_MODELS)
        m = [data.model_ids.index(x) for x in rows["model"]]
        np.testing.assert_array_equal(rows["n_responses"], truth["observed_cell"][m, k] * ITEMS[k])
        # Predicted exactly where the simulation evaluated nothing.
        np.testing.assert_array_equal(rows["observed"], truth["observed_cell"][m, k])
    assert (table["observed"] == (table["n_responses"] > 0)).all()
    assert (~table["observed"]).sum() == (~truth["observed_cell"]).sum()


def test_interval_and_top_k_options_change_the_columns(fitted):
    _, path, _ = fitted
    wide, _ = _tables(path, interval=0.99)
    narrow, _ = _tables(path, interval=0.5)
    merged = wide.merge(narrow, on="model", suffixes=("_w", "_n"))
    assert (merged["lower_w"] <= merged["lower_n"]).all()
    assert (merged["upper_w"] >= merged["upper_n"]).all()
    assert (merged["upper_w"] - merged["lower_w"] > merged["upper_n"] - merged["lower_n"]).all()
    tree = load(path)
    one = abilities.ability_table(tree, top_k=1)
    tree.close()
    assert "p_top1" in one and one["p_top1"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("by_benchmark", [False, True])
def test_csv_round_trip_is_exact(fitted, tmp_path, by_benchmark):
    _, path, _ = fitted
    table = _tables(path)[by_benchmark]
    # Names that pandas would otherwise read as NaN, a number or split at a comma.
    odd = ["NA", "1e3", "a,b", 'q"uote', " padded ", "null", "True", "007", "x", "é/ü"]
    table = table.assign(model=pd.Series([odd[i % len(odd)] for i in range(len(table))],
                                         dtype=table["model"].dtype))
    abilities.write_csv(table, tmp_path / "t.csv")
    back = abilities.read_csv(tmp_path / "t.csv")
    pd.testing.assert_frame_equal(back, table, check_exact=True)


def test_read_csv_refuses_other_tables(tmp_path):
    (tmp_path / "x.csv").write_text("model_id,ability_score\nm,1.0\n")
    with pytest.raises(InputError, match="not an ability table"):
        abilities.read_csv(tmp_path / "x.csv")


def test_track2_and_json_through_the_pipeline(fitted, tmp_path):
    name, path, _ = fitted
    out = pipeline.abilities(path, tmp_path / "t2" / "track2_scores.csv", fmt="track2",
                             top_k=TOP_K, json_out=tmp_path / "a.json", echo=None)
    text = out.read_text().splitlines()
    assert text[0] == "model_id,ability_score"
    scores = pd.read_csv(out, dtype={"model_id": str}, float_precision="round_trip")
    table, _ = _tables(path)
    assert len(scores) == N_MODELS
    np.testing.assert_array_equal(scores["model_id"], table["model"])
    np.testing.assert_allclose(scores["ability_score"], table["mean"], rtol=0, atol=0)
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["provenance"]["model_name"] == name
    assert doc["provenance"]["path"] == os.path.abspath(path)
    assert "fingerprint" in doc["provenance"]
    assert doc["options"] == {"by_benchmark": False, "top_k": TOP_K, "interval": 0.9,
                              "format": "track2"}
    assert [r["model"] for r in doc["abilities"]] == list(table["model"])
    assert doc["abilities"][0]["rank"] == 1 and isinstance(doc["abilities"][0]["observed"], bool)


def test_track2_refuses_a_by_benchmark_table(fitted, tmp_path):
    _, path, _ = fitted
    with pytest.raises(InputError, match="one ability per model"):
        pipeline.abilities(path, tmp_path / "t.csv", fmt="track2", by_benchmark=True, echo=None)
    with pytest.raises(InputError, match="format must be one of"):
        pipeline.abilities(path, tmp_path / "t.csv", fmt="parquet", echo=None)
    assert not (tmp_path / "t.csv").exists()


def test_cli_writes_table_json_plot_and_prints_top_five(posterior_of, tmp_path):
    path = posterior_of("hier2pl")
    out = tmp_path / "deep" / "abilities.csv"
    proc = cli("abilities", path, "--out", out, "--by-benchmark", "--top-k", TOP_K,
               "--json", tmp_path / "a.json", "--plot", tmp_path / "a.png")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = abilities.read_csv(out)
    assert len(table) == N_MODELS * len(ITEMS) and f"p_top{TOP_K}" in table
    assert "predicted" in proc.stdout and "(model, benchmark) cells" in proc.stdout
    # Top 5 of each of the 3 benchmarks, each line starting with its rank.
    ranked = [line.split()[0] for line in proc.stdout.splitlines()
              if line.startswith("  ") and line.split()[0].isdigit()]
    assert ranked == ["1", "2", "3", "4", "5"] * len(ITEMS)
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads((tmp_path / "a.json").read_text())["abilities"]) == len(table)


def test_cli_track2_header_is_exact(posterior_of, tmp_path):
    path = posterior_of("rasch")
    proc = cli("abilities", path, "--out", tmp_path / "track2_scores.csv", "--format", "track2")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "track2_scores.csv").read_text().split("\n")[0] == \
        "model_id,ability_score"
    assert "   1  " in proc.stdout


def _foreign_hdf5(path):
    import xarray as xr

    from bayesirt.posteriors import available_engines

    xr.Dataset({"a": ("x", np.arange(3))}).to_netcdf(path, engine=available_engines()[0])


def _netcdf3(path):
    import xarray as xr

    xr.Dataset({"a": ("x", np.arange(3))}).to_netcdf(path, engine="scipy")


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_text("model,score\nm1,0.3\n"), "not a netCDF4/HDF5 file"),
    (_foreign_hdf5, "not a bayesirt posterior"),
    (_netcdf3, "NetCDF3 classic file"),
])
def test_cli_refuses_a_file_that_is_not_ours_in_one_line(tmp_path, make, message):
    bad = tmp_path / "not_ours.nc"
    make(bad)
    proc = cli("abilities", bad, "--out", tmp_path / "a.csv")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("bayesirt abilities: error: ") and str(bad) in lines[0]
    assert message in lines[0]
    assert not (tmp_path / "a.csv").exists()


def test_posterior_without_the_ability_contract_is_refused_naming_the_file(tmp_path):
    from bayesirt.posteriors.synthetic import synthetic_fit

    # A bayesirt file whose posterior has no theta (the synthetic test fit).
    path = save(synthetic_fit(np.random.default_rng(0), chains=1, draws=20,
                              log_likelihood=False), tmp_path / "synthetic.nc")
    with pytest.raises(InputError, match=r"synthetic\.nc: .*no 'theta' variable"):
        pipeline.abilities(path, tmp_path / "a.csv", echo=None)


def test_import_reads_posteriors_without_jax():
    code = ("import sys, bayesirt.abilities; "
            "print(sorted(m for m in ('jax', 'numpyro', 'bayesirt.inference', "
            "'bayesirt.pipeline', 'matplotlib') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert proc.stdout.strip() == "[]"


# --- the numpy layer ----------------------------------------------------------------------


def test_draw_ranks_and_rank_summary_on_known_draws():
    draws = np.array([[3.0, 1.0, 2.0], [1.0, 3.0, 2.0], [3.0, 2.0, 1.0], [3.0, 1.0, 2.0]])
    np.testing.assert_array_equal(abilities.draw_ranks(draws),
                                  [[1, 3, 2], [3, 1, 2], [1, 2, 3], [1, 3, 2]])
    s = abilities.rank_summary(draws, interval=0.5, top_k=1)
    np.testing.assert_array_equal(s["rank"], [1, 2, 3])  # means 2.5, 1.75, 1.75: tie -> first
    np.testing.assert_allclose(s["mean"], [2.5, 1.75, 1.75])
    np.testing.assert_allclose(s["p_top_k"], [0.75, 0.25, 0.0])
    # Central 50% of the per-draw ranks, as ranks the draws take: {1,1,1,3}, {1,2,3,3}, {2,2,2,3}.
    np.testing.assert_array_equal(s["rank_lower"], [1, 1, 2])
    np.testing.assert_array_equal(s["rank_upper"], [1, 3, 2])
    # Ties inside a draw still give a permutation.
    np.testing.assert_array_equal(abilities.draw_ranks(np.zeros((1, 3))), [[1, 2, 3]])


def test_rank_summary_ranks_each_benchmark_on_its_own():
    rng = np.random.default_rng(0)
    means = np.array([[2.0, -2.0], [0.0, 0.0], [-2.0, 2.0]])  # (model, benchmark)
    s = abilities.rank_summary(means + 0.1 * rng.standard_normal((200, 3, 2)), top_k=1)
    np.testing.assert_array_equal(s["rank"], [[1, 3], [2, 2], [3, 1]])
    np.testing.assert_allclose(s["p_top_k"].sum(axis=0), [1.0, 1.0])


@pytest.mark.parametrize(("kw", "message"), [
    ({"interval": 1.0}, "interval must be in"), ({"interval": "0.9"}, "interval must be"),
    ({"top_k": 0}, "top_k must be a positive"), ({"top_k": 2.5}, "top_k must be"),
])
def test_bad_options_name_the_value(kw, message):
    with pytest.raises(InputError, match=message):
        abilities.rank_summary(np.zeros((4, 3)), **kw)


def test_non_finite_draws_and_bad_indices_are_refused():
    with pytest.raises(InputError, match="not finite"):
        abilities.rank_summary(np.array([[0.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(InputError, match="model_idx"):
        abilities.response_counts(np.array([0, 5]), np.array([0, 1]), np.array([0, 1]), 2, 2)
    counts = abilities.response_counts(np.array([0, 0, 1]), np.array([0, 1, 1]),
                                       np.array([0, 1]), 3, 2)
    np.testing.assert_array_equal(counts, [[1, 1], [0, 1], [0, 0]])


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])  # IHDR: width, height


def test_forest_height_scales_with_the_number_of_models(tmp_path):
    rng = np.random.default_rng(1)
    sizes = {}
    for n in (30, 150):
        names = [f"organisation-{i % 7}/a-rather-long-model-name-{i}" for i in range(n)]
        draws = rng.normal(size=n) + 0.3 * rng.standard_normal((100, n))
        observed = np.arange(n) != 3
        sizes[n] = _png_size(save_forest(tmp_path / f"f{n}.png", names, draws, observed))
    # Every model keeps its 0.2 inch row (19 px at 96 DPI): 120 more rows, ~2,300 px more.
    assert sizes[150][1] - sizes[30][1] == pytest.approx(120 * ROW_IN * 96, abs=2)
    assert sizes[30][1] >= 30 * ROW_IN * 96
    with pytest.raises(InputError, match="disagree"):
        save_forest(tmp_path / "x.png", ["a"], np.zeros((5, 2)), np.ones(2, bool))


def test_help_teaches_the_command():
    assert "abilities" in cli("--help").stdout
    text = " ".join(cli("abilities", "--help").stdout.split())
    for word in ("--by-benchmark", "--format", "track2", "--top-k", "--json", "--plot",
                 "PREDICTED", "default: 10"):
        assert word in text, word


def test_expected_accuracy_is_the_equal_weight_mean_over_benchmarks_of_item_means():
    from bayesirt.abilities.expected import expected_accuracy

    rng = np.random.default_rng(5)
    s, m, k = 7, 4, 3
    item_benchmark = np.array([0, 0, 0, 1, 2, 2])   # 3 / 1 / 2 items
    ability = rng.normal(size=(s, m, k))
    b = rng.normal(0, 3, size=(s, 6))               # wide: exercises both sigmoid branches
    log_a = rng.normal(0, 0.5, size=(s, 6))
    g = rng.uniform(0, 0.3, size=(s, k))
    got = expected_accuracy(ability, b, log_a, item_benchmark, g, chunk=3)
    want = np.zeros((s, m))
    for si in range(s):
        for mi in range(m):
            per = []
            for ki in range(k):
                js = np.flatnonzero(item_benchmark == ki)
                p = g[si, ki] + (1 - g[si, ki]) / (
                    1 + np.exp(-np.exp(log_a[si, js]) * (ability[si, mi, ki] - b[si, js])))
                per.append(p.mean())
            want[si, mi] = np.mean(per)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match="do not match"):
        expected_accuracy(ability, b[:, :5], log_a, item_benchmark)
