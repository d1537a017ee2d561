import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from bayesirt.diagnostics import convergence as cv
from bayesirt.diagnostics import convergence_summary, heldout, run_diagnose
from bayesirt.posteriors import save, to_datatree
from bayesirt.posteriors.synthetic import synthetic_fit


def _fit(broken=False, seed=0):
    return synthetic_fit(np.random.default_rng(seed), n_models=10, n_items=50, n_benchmarks=3,
                         chains=4, draws=300, broken=broken)


def test_vectorised_diagnostics_match_arviz_stats():
    from arviz_stats.base.array import array_stats

    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 4, 201))
    for c in range(4):  # AR(1) chains: long autocorrelation exercises Geyer's truncation
        for t in range(1, 201):
            x[:4, c, t] += 0.9 * x[:4, c, t - 1]
    x[4:6] += np.arange(4)[None, :, None]  # stuck chains
    x[6:8] = np.round(x[6:8])  # ties
    d = cv.diagnose_block(x)
    ref = {
        "rhat": array_stats.rhat(x, chain_axis=-2, draw_axis=-1),
        "ess_bulk": array_stats.ess(x, chain_axis=-2, draw_axis=-1, method="bulk"),
        "ess_tail": array_stats.ess(x, chain_axis=-2, draw_axis=-1, method="tail",
                                    prob=(0.05, 0.95)),
        "mcse": array_stats.mcse(x, chain_axis=-2, draw_axis=-1),
    }
    for key, want in ref.items():
        np.testing.assert_allclose(d[key], want, rtol=1e-8, err_msg=key)


def test_convergence_summary_good_and_broken():
    good = convergence_summary(to_datatree(_fit()), rhat_max=1.05, ess_min=100)
    assert good["passed"], good["failures"]
    assert good["rhat_max"] < 1.05 and good["divergences"] == 0
    bad = convergence_summary(to_datatree(_fit(broken=True)))
    assert not bad["passed"]
    text = " ".join(bad["failures"])
    assert "R-hat" in text and "divergent" in text and "E-BFMI" in text
    assert bad["rhat_max"] > 1.5
    assert "[" in bad["worst"][0]["name"]  # named like ability[org1/model-1, bench0]


def test_metrics_known_values():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    assert heldout.roc_auc(y, p) == pytest.approx(0.75)
    assert heldout.brier(y, p) == pytest.approx(np.mean((p - y) ** 2))
    want = -np.mean(np.log([0.9, 0.6, 0.35, 0.8]))
    assert heldout.log_loss(y, p) == pytest.approx(want)
    assert heldout.log_loss(np.array([1]), np.array([0.0])) == pytest.approx(-np.log(1e-7))
    rel = heldout.reliability(np.array([1, 0, 1, 1]), np.array([0.95, 0.95, 0.05, 0.05]))
    assert rel["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.95)
    with pytest.raises(ValueError):
        heldout.metrics(y, np.array([0.1, np.nan, 0.2, 0.3]))


def test_loo_matches_arviz_and_subsample_is_close():
    import arviz_stats

    from bayesirt.diagnostics import checks

    tree = to_datatree(_fit())
    obs = checks.observations(tree)
    full = checks.compute_loo(tree, obs, np.random.default_rng(0), r_eff=1.0)
    ref = arviz_stats.loo(tree, reff=1.0)
    assert full["elpd_loo"] == pytest.approx(float(ref.elpd), abs=1e-3)
    assert full["se"] == pytest.approx(float(ref.se), rel=1e-3)
    assert full["loglik_max_abs_diff"] < 1e-4
    sub = checks.compute_loo(tree, obs, np.random.default_rng(0), full_max=10, subsample=200)
    assert sub["subsample_size"] == 200
    assert abs(sub["elpd_loo"] - full["elpd_loo"]) < 4 * sub["se"]


def test_report_and_json(tmp_path):
    path = save(_fit(), tmp_path / "post.nc")
    s = run_diagnose(path, tmp_path / "r.html", json_path=tmp_path / "s.json", progress=False,
                     rhat_max=1.05, ess_min=100)
    assert s.passed, s.failures
    data = json.loads((tmp_path / "s.json").read_text())
    for key in ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "bfmi_min",
                "elpd_loo"):
        assert data[key] is not None, key
    html = (tmp_path / "r.html").read_text()
    assert "PASS" in html[:3000]
    for sec in ("provenance", "convergence", "ppc", "parameters", "loo"):
        assert f'id="{sec}"' in html
    assert "http://" not in html and "https://" not in html  # no network requests
    assert html.count("data:image/png;base64,") >= 6


def test_broken_fit_fails_with_reasons_first(tmp_path):
    path = save(_fit(broken=True), tmp_path / "bad.nc")
    s = run_diagnose(path, tmp_path / "bad.html", progress=False, strict=True)
    assert not s.passed
    html = (tmp_path / "bad.html").read_text()
    verdict = html[html.index('id="verdict"'): html.index("<nav>")]
    assert "FAIL" in verdict and "R-hat" in verdict and "divergent" in verdict


def test_heldout_join_on_bundled_split(small_dir):
    import pandas as pd

    paths = heldout.locate(small_dir)
    assert paths["test_dir"] == small_dir / "test"
    assert heldout.locate(small_dir / "test")["ground_truth"] == paths["ground_truth"]
    pairs = pd.read_csv(paths["test_dir"] / "test_pairs.csv", dtype=str)
    pred = pairs.assign(predicted_probability=0.6).iloc[::-1]  # order must not matter
    y, p, joined = heldout.join_truth(pred, paths["ground_truth"])
    assert len(y) == len(pairs) and set(joined["benchmark"]) >= {"gsm8k"}
    m = heldout.metrics(y, p)
    assert m["auc"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no prediction"):
        heldout.join_truth(pred.iloc[1:], paths["ground_truth"])


def test_report_renders_in_headless_chromium(tmp_path, headless_chromium):
    path = save(_fit(broken=True), tmp_path / "post.nc")
    report = tmp_path / "report.html"
    run_diagnose(path, report, progress=False)
    dom = headless_chromium(report, window="1200,1000")
    assert 'data-images-checked="1"' in dom
    assert 'data-images-broken="0"' in dom
    # Shown at natural size: a figure's N-point labels render at N CSS points.
    assert 'data-images-scaled="0"' in dom
    total = int(dom.split('data-images-total="')[1].split('"')[0])
    assert total >= 5


def test_constant_parameters_are_never_failures(tmp_path):
    """Fixed zeros (a single-category benchmark's offset) have no R-hat; they must not fail."""
    import dataclasses

    import numpy as np

    from bayesirt.posteriors.synthetic import synthetic_fit

    fit = synthetic_fit(np.random.default_rng(3), chains=4, draws=500)
    post = dict(fit.posterior)
    offset = post["category_offset"].copy()
    offset[..., 0] = 0.0
    post["category_offset"] = offset
    fit = dataclasses.replace(fit, posterior=post)
    path = save(fit, tmp_path / "post.nc")
    summary = run_diagnose(path, tmp_path / "r.html", progress=False)
    assert not any("n/a" in f for f in summary.failures), summary.failures
    assert not any("category_offset" in f for f in summary.failures), summary.failures


class _Tables(HTMLParser):
    """Cell texts of every table with an id: {id: [[cell, ...], ...]} (header row first)."""

    def __init__(self):
        super().__init__()
        self.tables, self._id, self._row, self._cell = {}, None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self._id = attrs["id"]
            self.tables[self._id] = []
        elif self._id and tag == "tr":
            self._row = []
            self.tables[self._id].append(self._row)
        elif self._id and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "table":
            self._id = None
        elif self._id and tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _tables(html):
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def _internal_fit(seed=0):
    """A synthetic fit with what real hier2pl files hold: a broken sampler coordinate
    (``difficulty_raw``), a coordinate-less ``multi_benchmark`` dim and constant variables."""
    import dataclasses

    fit = _fit(seed=seed)
    post, dims = dict(fit.posterior), dict(fit.dims)
    rng = np.random.default_rng(seed + 1)
    chains, draws, n_items = post["difficulty"].shape
    # Chain-specific offsets: R-hat far above every reported parameter's.
    post["difficulty_raw"] = (rng.normal(size=(chains, draws, n_items))
                              + 3 * np.arange(chains)[:, None, None]).astype(np.float32)
    dims["difficulty_raw"] = ("item",)
    const = fit.constant_data
    used = np.unique(const["item_category"])
    per_bench = np.bincount(const["category_benchmark"][used])
    multi = np.flatnonzero(per_bench >= 2)
    post["sigma_category"] = np.abs(rng.normal(1.0, 0.1, (chains, draws, multi.size))
                                    ).astype(np.float32)
    dims["sigma_category"] = ("multi_benchmark",)
    post["ability_pop_scale"] = np.ones_like(post["ability_pop_scale"])
    post["category_offset"][..., 0] = 0.0
    fit = dataclasses.replace(fit, posterior=post, dims=dims)
    return fit, [fit.coords["benchmark"][k] for k in multi]


@pytest.fixture(scope="module")
def internal_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("internal")
    fit, multi_names = _internal_fit()
    path = save(fit, tmp / "post.nc")
    summary = run_diagnose(path, tmp / "r.html", progress=False, rhat_max=1.05, ess_min=100)
    return summary, (tmp / "r.html").read_text(), multi_names, path


def test_tables_leave_out_raw_sites_and_constant_rows(internal_report):
    from bayesirt.diagnostics.summary import is_raw

    s, html, _, _ = internal_report
    # The broken sampler coordinate still decides the verdict (as `bayesirt fit` does) ...
    assert not s.passed and s.rhat_max_where.startswith("difficulty_raw[")
    assert s.n_raw_params == 50
    tables = _tables(html)
    for tid in ("per-variable", "worst-rhat", "worst-ess"):
        body = tables[tid][1:]
        assert body, tid
        names = [row[0] for row in body]
        # ... but the tables list reported parameters only, and no constants.
        assert not any(is_raw(n.split("[")[0]) for n in names), (tid, names)
        assert not any(n.startswith("ability_pop_scale") for n in names), (tid, names)
        assert not any("n/a" in cell or cell == "constant" for row in body for cell in row)
    assert f"{s.n_constant_params} constant parameters" in html
    assert s.n_constant_params == 3 + 1  # ability_pop_scale x3, category_offset[0]
    assert "difficulty_raw" in html.split('id="per-variable"')[0]  # named in the note


def test_worst_tables_are_sorted_by_their_column(internal_report):
    _, html, _, _ = internal_report
    tables = _tables(html)
    head = tables["worst-rhat"][0]
    rhat = [float(r[head.index("R-hat")]) for r in tables["worst-rhat"][1:]]
    assert rhat == sorted(rhat, reverse=True)
    ess = [min(int(r[head.index("bulk ESS")]), int(r[head.index("tail ESS")]))
           for r in tables["worst-ess"][1:]]
    assert ess == sorted(ess)


def test_names_come_from_coordinates_not_indices(internal_report):
    _, html, multi_names, path = internal_report
    assert multi_names
    per_var = _tables(html)["per-variable"]
    at = next(r for r in per_var if r[0] == "sigma_category")[per_var[0].index("at")]
    assert at in {f"sigma_category[{name}]" for name in multi_names}
    assert "sigma_category[0]" not in html and "sigma_category[1]" not in html
    priors = _tables(html)["bench-priors"]
    row = next(r for r in priors if r[0] == "sigma_category")
    assert sum(cell != "\u2014" for cell in row[1:]) == len(multi_names)
    assert "ability[org" in html  # model ids label the abilities
    from bayesirt.posteriors import load

    tree = load(path)
    names = {w["name"] for w in convergence_summary(tree, n_worst=500)["worst"]}
    tree.close()
    assert {f"sigma_category[{name}]" for name in multi_names} <= names


def test_ess_is_integer_formatted(internal_report):
    _, html, _, _ = internal_report
    tables = _tables(html)
    cells = []
    for tid in ("worst-rhat", "worst-ess", "per-variable"):
        head, *body = tables[tid]
        cols = [i for i, h in enumerate(head) if "ESS" in h]
        assert cols, tid
        cells += [row[i] for row in body for i in cols]
    checks = tables["checks"]
    cells += [r[1] for r in checks if "ESS" in r[0]]
    assert cells and all(re.fullmatch(r"\d+", c) for c in cells), cells


def test_verdict_and_next_steps_come_before_provenance(internal_report):
    s, html, _, path = internal_report
    verdict, nxt = html.index('id="verdict"'), html.index('id="next"')
    prov, config = html.index('id="provenance"'), html.index("&quot;chains&quot;")
    assert verdict < nxt < prov < config
    assert html.index("<details", prov) < config  # configuration collapsed
    for word in ("max R-hat", "min bulk ESS", "min tail ESS", "divergent", "E-BFMI",
                 "tree-depth"):
        assert word in html[verdict:nxt], word
    assert "difficulty_raw[" in html[verdict:nxt]  # where the worst R-hat is
    # Sizes in MB = 1e6 bytes, as `bayesirt fit` prints them.
    text = re.sub(r'src="data:[^"]*"', "", html)
    assert f"{path.stat().st_size / 1e6:.1f} MB" in text and "MiB" not in text


def test_broken_fit_says_what_to_do_next(tmp_path):
    path = save(_fit(broken=True), tmp_path / "bad.nc")
    s = run_diagnose(path, tmp_path / "bad.html", progress=False)
    text = " ".join(s.next_steps)
    assert "--target-accept" in text and "--warmup" in text and "R-hat" in text
    html = (tmp_path / "bad.html").read_text()
    assert "<code>--target-accept" in html[html.index('id="next"'): html.index("<nav>")]
    assert s.divergences > 0 and "divergence-suspects" in html
