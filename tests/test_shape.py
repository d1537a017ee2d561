"""The empirical prior shape of new items (bayesirt.predictive.shape)."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit

from bayesirt.predictive import ItemInfo, PosteriorDraws, predict_pairs
from bayesirt.predictive import shape as shape_module
from bayesirt.predictive.shape import U_B, U_L, PriorShape


def _one_benchmark(rng, u_b, u_l, category, S=30, M=12):
    """Draws of one benchmark whose fitted items sit at standardised (u_b, u_l) (+ jitter)."""
    J = u_b.size
    ones = np.ones((S, 1))
    mu_b, sd_b, mu_l, sd_l = 0.3, 1.2, -0.1, 0.35
    jit = 0.05 * rng.normal(size=(S, J))
    return PosteriorDraws.from_arrays(
        model_ids=[f"m{i}" for i in range(M)], item_ids=[f"i{j}" for j in range(J)],
        benchmark_ids=["b"], category_ids=["b/c0", "b/c1"],
        ability=np.broadcast_to(rng.normal(0, 1, (1, M, 1)), (S, M, 1)).copy(),
        difficulty=mu_b + sd_b * (u_b[None, :] + jit),
        log_discrimination=mu_l + sd_l * (u_l[None, :] + jit),
        mu_difficulty=mu_b * ones, sigma_difficulty=sd_b * ones,
        mu_log_discrimination=mu_l * ones, sigma_log_discrimination=sd_l * ones,
        ability_pop_loc=0 * ones, ability_pop_scale=ones, item_benchmark=np.zeros(J, int),
        item_category=category, category_benchmark=np.zeros(2, int),
        category_offset=np.zeros((S, 2)))


def test_the_shape_is_the_models_normal_when_the_fitted_items_are_normal(monkeypatch):
    rng = np.random.default_rng(0)
    J = 4000
    d = _one_benchmark(rng, rng.normal(size=J), rng.normal(size=J), np.arange(J) % 2)
    shape = PriorShape(d, d.mu_difficulty[:, d.item_benchmark], rasch=False)
    log_phi = (-0.5 * U_B[:, None] ** 2 - 0.5 * U_L[None, :] ** 2)
    for key in ((0, -1), (0, 0), (0, 1)):
        f = np.exp(log_phi + shape.tables[key])
        f /= f.sum()
        # The density's moments are the normal's: the kernel added no spread (without the
        # points' pull towards their mean the variance would be 1 + h^2 = 1.08 here).
        assert abs(f.sum(axis=1) @ U_B) < 0.05 and abs(f.sum(axis=0) @ U_L) < 0.05
        assert abs(f.sum(axis=1) @ U_B**2 - 1) < 0.04
        assert abs(f.sum(axis=0) @ U_L**2 - 1) < 0.04
    models = [f"m{m}" for m in range(12)]
    new = {"n": ItemInfo("b", "b/c1")}
    p = predict_pairs(d, models, ["n"] * 12, new_items=new)
    monkeypatch.setattr(shape_module, "EMPIRICAL_SHAPE", False)
    normal = predict_pairs(d, models, ["n"] * 12, new_items=new)
    assert np.max(np.abs(p - normal)) < 0.01


def _sample_shape(rng, u_b, u_l, n):
    """n draws from the kernel density of the points (u_b, u_l) as shape.py defines it."""
    h = shape_module.BANDWIDTH_FACTOR * u_b.shape[-1] ** (-1.0 / 6.0)  # Silverman, 2-D
    xb, xl = u_b.reshape(-1), u_l.reshape(-1)
    pick = rng.integers(0, xb.size, n)
    out = []
    for x in (xb, xl):
        pulled = x.mean() + (x - x.mean()) / np.sqrt(1.0 + h**2)
        out.append(pulled[pick] + h * x.std() * rng.normal(size=n))
    return out


def test_a_new_item_takes_its_categorys_bimodal_prior_and_its_labels_pick_a_mode(monkeypatch):
    """Category c1's items are all either easy or hard (standardised difficulty -2.5 or
    +2.5), c0's normal. A new c1 item is integrated against c1's shape; the reference is
    Monte Carlo from that same prior, sampled directly (c1's fitted items' draws smoothed by
    the kernel, mixed with the benchmark's and the normal as shape.py mixes them), weighted
    by the labels: the two agree, and differ from the model's normal prior."""
    rng = np.random.default_rng(1)
    J, S = 3000, 30
    category = np.arange(J) % 2
    u_b = np.where(category == 1, rng.choice([-2.5, 2.5], J) + 0.3 * rng.normal(size=J),
                   rng.normal(size=J))
    u_l = rng.normal(size=J)
    d = _one_benchmark(rng, u_b, u_l, category, S=S)
    mu_b, sd_b = d.mu_difficulty[0, 0], d.sigma_difficulty[0, 0]
    mu_l, sd_l = d.mu_log_discrimination[0, 0], d.sigma_log_discrimination[0, 0]
    ub_draws = (d.difficulty - mu_b) / sd_b  # (S, J) standardised, as shape.py sees them
    ul_draws = (d.log_discrimination - mu_l) / sd_l
    n = 400_000
    c1 = np.flatnonzero(category == 1)
    w_c = c1.size / (c1.size + shape_module.PRIOR_COUNT)
    w_k = J / (J + shape_module.PRIOR_COUNT)
    floor = shape_module.FLOOR
    # Mixture weights: category, benchmark, normal.
    comp = rng.choice(3, n, p=[(1 - floor) * w_c, (1 - floor) * (1 - w_c) * w_k,
                               floor + (1 - floor) * (1 - w_c) * (1 - w_k)])
    zb, zl = rng.normal(size=n), rng.normal(size=n)
    for c, cols in ((0, c1), (1, np.arange(J))):
        sb, sl = _sample_shape(rng, ub_draws[:, cols], ul_draws[:, cols], n)
        zb = np.where(comp == c, sb, zb)
        zl = np.where(comp == c, sl, zl)
    b, al = mu_b + sd_b * zb, np.exp(mu_l + sd_l * zl)
    theta = d.ability[0, :, 0]
    new = {"n": ItemInfo("b", "b/c1")}
    models = [f"m{m}" for m in range(8)]
    for labels in ([], [(8, 1), (9, 1), (10, 0)]):
        lab = (([f"m{m}" for m, _ in labels], ["n"] * len(labels), [y for _, y in labels])
               if labels else None)
        p = predict_pairs(d, models, ["n"] * 8, new_items=new, labels=lab)
        logw = np.zeros(n)
        for m, y in labels:
            logw += log_expit((2 * y - 1) * al * (theta[m] - b))
        w = np.exp(logw - logw.max())
        ref = np.array([w @ expit(al * (theta[m] - b)) / w.sum() for m in range(8)])
        # Monte Carlo error ~1e-3; the lookup grid's binning and interpolation the rest.
        assert np.max(np.abs(p - ref)) < 0.005
    # The model's normal prior says something else (the test could fail).
    monkeypatch.setattr(shape_module, "EMPIRICAL_SHAPE", False)
    normal = predict_pairs(d, models, ["n"] * 8, new_items=new, labels=lab)
    assert np.max(np.abs(normal - ref)) > 0.05


def test_the_correction_reads_the_lookup_table_at_its_nodes_and_keeps_the_edge_beyond():
    rng = np.random.default_rng(2)
    J = 500
    d = _one_benchmark(rng, rng.normal(size=J), rng.normal(size=J), np.arange(J) % 2)
    shape = PriorShape(d, d.mu_difficulty[:, d.item_benchmark], rasch=False)
    table = shape.tables[(0, -1)]
    ib, il = 37, 12
    on = shape.correction((0, -1), np.array([U_B[ib]]), np.array([U_L[il]]))
    assert abs(on[0] - table[ib, il]) < 1e-12
    far = shape.correction((0, -1), np.array([50.0]), np.array([U_L[il]]))
    assert abs(far[0] - table[-1, il]) < 1e-12
    assert np.all(shape.correction(None, np.zeros(3), np.zeros(3)) == 0)


def test_a_rasch_posterior_gets_a_one_dimensional_shape_and_finite_predictions():
    """Rasch draws (no discrimination spread): the shape is over difficulty alone, its
    moments are the fitted items' (bimodal: variance ~ 2.5^2), predictions stay finite."""
    rng = np.random.default_rng(3)
    J, S, M = 2000, 20, 6
    u_b = rng.choice([-2.5, 2.5], J) + 0.3 * rng.normal(size=J)
    ones = np.ones((S, 1))
    d = PosteriorDraws.from_arrays(
        model_ids=[f"m{i}" for i in range(M)], item_ids=[f"i{j}" for j in range(J)],
        benchmark_ids=["b"], ability=rng.normal(0, 1, (S, M, 1)),
        difficulty=1.0 * u_b[None, :] + 0.05 * rng.normal(size=(S, J)),
        mu_difficulty=0 * ones, sigma_difficulty=ones, ability_pop_loc=0 * ones,
        ability_pop_scale=ones, item_benchmark=np.zeros(J, int))
    shape = PriorShape(d, d.mu_difficulty[:, d.item_benchmark], rasch=True)
    table = shape.tables[(0, -1)]
    assert table.shape == U_B.shape
    f = np.exp(-0.5 * U_B**2 + table)
    f /= f.sum()
    assert abs(f @ U_B**2 - 0.95 * np.mean(u_b**2) - 0.05) < 0.3
    p = predict_pairs(d, [f"m{m}" for m in range(M)], ["n"] * M,
                      new_items={"n": ItemInfo("b")})
    assert np.all(np.isfinite(p)) and np.all((p > 0) & (p < 1))
