"""Model metadata: parsing, the feature encoding, the ability prior of models never fitted."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayesirt import data as bdata
from bayesirt.errors import InputError, InputWarning
from bayesirt.features import FEATURES, model_features, org_index
from bayesirt.predictive import ItemInfo, ModelInfo, PosteriorDraws, predict_pairs
from bayesirt.predictive.subjects import general_ability_prior


def test_release_dates_parse_to_fractional_years():
    assert bdata.parse_release_date("2024-01-01") == 2024.0
    assert bdata.parse_release_date("2024-07-01") == pytest.approx(2024 + 182 / 366)
    assert bdata.parse_release_date("2024") == 2024.5
    assert math.isnan(bdata.parse_release_date("")) and math.isnan(bdata.parse_release_date(None))
    with pytest.raises(InputError, match="'July 2024' is not a date"):
        bdata.parse_release_date("July 2024")


def test_metadata_file_errors_name_file_and_row(tmp_path, small_dir):
    import shutil

    train = tmp_path / "train"
    shutil.copytree(small_dir / "train", train)
    meta = train / "model_metadata.csv"
    lines = meta.read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",31/02/2024"
    meta.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"model_metadata.csv.*'31/02/2024' is not a date"):
        bdata.load(train)
    data = bdata.load(small_dir)
    assert np.isfinite(data.model_release_year).sum() == 8  # 8 of 30 models have a date


def test_feature_encoding_marks_unknowns_and_reuses_the_training_scale():
    z, center, scale = model_features(np.array([7e9, 70e9, np.nan]), np.array([1, np.nan, 0]),
                                      np.array([2024.0, np.nan, 2025.0]))
    col = {f: FEATURES.index(f) for f in FEATURES}
    assert z[:, col["params_unknown"]].tolist() == [0, 0, 1]
    assert z[:, col["instruct_unknown"]].tolist() == [0, 1, 0]
    assert z[2, col["log10_params"]] == 0 and z[1, col["release_year"]] == 0
    assert z[0, col["log10_params"]] == pytest.approx(-1.0)  # two known: +-1 sd
    # A new model is encoded with the training centre and scale, not its own.
    z_new, c2, s2 = model_features(np.array([70e9]), np.array([1.0]), np.array([2026.0]),
                                   center, scale)
    assert np.array_equal(c2, center) and z_new[0, col["log10_params"]] == pytest.approx(1.0)
    assert z_new[0, col["release_year"]] == pytest.approx(3.0)
    assert org_index(["B", "", "Z"], ("A", "B")).tolist() == [1, -1, -1]


def _draws_with_metadata(S=50, M=6):
    ones = np.ones((S, 1))
    center, scale = np.zeros(len(FEATURES)), np.ones(len(FEATURES))
    coef = np.zeros((S, len(FEATURES)))
    coef[:, FEATURES.index("log10_params")] = 0.8
    return PosteriorDraws.from_arrays(
        model_ids=[f"m{i}" for i in range(M)], item_ids=["i0"], benchmark_ids=["b"],
        org_ids=["Strong", "Weak"], ability=np.zeros((S, M, 1)), difficulty=np.zeros((S, 1)),
        mu_difficulty=0 * ones, sigma_difficulty=ones, ability_pop_loc=0 * ones,
        ability_pop_scale=ones, item_benchmark=[0], general_ability=np.zeros((S, M)),
        loading=0.8 * ones, metadata_coef=coef,
        org_effect=np.column_stack([np.full(S, 1.0), np.full(S, -1.0)]),
        ability_residual_scale=np.full(S, 0.5), metadata_center=center,
        metadata_scale=scale)


@pytest.mark.filterwarnings("ignore::bayesirt.errors.InputWarning")
def test_unknown_models_get_their_metadata_prior():
    draws = _draws_with_metadata()
    ids = ["strong", "weak", "big", "bare"]
    infos = {"strong": ModelInfo(org="Strong"), "weak": ModelInfo(org="Weak"),
             "big": ModelInfo(param_count=1e1)}  # log10 = 1 -> +0.8
    mean, var = general_ability_prior(draws, ids, infos)
    assert np.allclose(mean[0], [1.0, -1.0, 0.8, 0.0]) and np.allclose(var, 0.25)
    p = predict_pairs(draws, ids, ["i0"] * 4, new_models=infos)
    assert p[0] > p[2] > p[3] > p[1]
    # On a benchmark the posterior does not know, through the same general ability.
    q = predict_pairs(draws, ids, ["x"] * 4, new_items={"x": ItemInfo("new")}, new_models=infos)
    assert q[0] > q[3] > q[1]
    with pytest.raises(TypeError, match="must be a ModelInfo"):
        predict_pairs(draws, ["strong"], ["i0"], new_models={"strong": {"org": "Strong"}})


def test_without_models_keeps_items_and_metadata(small_dir):
    data = bdata.load(small_dir)
    gone = list(data.model_ids[:3])
    rest = bdata.without_models(data, gone)
    assert rest.n_models == data.n_train_models - 3 and not set(gone) & set(rest.model_ids)
    assert rest.n_items == data.n_train_items and rest.n_benchmarks == data.n_benchmarks
    j = data.model_ids.index(rest.model_ids[0])
    assert rest.model_org[0] == data.model_org[j]
    with pytest.raises(InputError, match="no model 'ghost'"):
        bdata.without_models(data, ["ghost"])


@pytest.mark.usefixtures("numpyro_lenient")
def test_a_metadata_fit_learns_an_organisation_effect(rng_key):
    """Simulated: organisation A's models are strong. A new model of A is predicted above
    a new model of B, and both differ from a bare new model only under --metadata."""
    from bayesirt.inference import FitConfig, fit
    from bayesirt.models.simulate import simulate
    from bayesirt.posteriors import flat_arrays, to_datatree

    data, truth = simulate(np.random.default_rng(5), "hier2pl", n_models=24,
                           items_per_benchmark=(40, 40))
    general = truth["ability"].mean(axis=1)
    orgs = tuple("A" if g > np.median(general) else "B" for g in general)
    data = bdata.IRTData(**{**{f: getattr(data, f) for f in data.__dataclass_fields__},
                            "model_org": orgs})
    res = fit(rng_key, data, FitConfig(chains=2, warmup=300, draws=200, metadata=True,
                                       progress=False))
    draws = PosteriorDraws.from_arrays(**flat_arrays(to_datatree(res)))
    assert draws.org_ids == ("A", "B")
    effect = draws.org_effect.mean(axis=0)
    assert effect[0] - effect[1] > 0.5
    infos = {"newA": ModelInfo(org="A"), "newB": ModelInfo(org="B")}
    with pytest.warns(InputWarning, match="'bare'"):  # only the undescribed one is named
        p = predict_pairs(draws, ["newA", "newB", "bare"], [data.item_ids[0]] * 3,
                          new_models=infos)
    assert p[0] > p[2] > p[1]
