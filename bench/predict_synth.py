"""Synthetic 2PL posteriors for the predictive tests and benchmarks (numpy only)."""

from __future__ import annotations

import numpy as np

from bayesirt.predictive import PosteriorDraws


def synthetic_world(rng, *, n_models=12, n_bench=2, n_items=40, n_draws=300, n_new=6,
                    jitter=0.15, guess=False, embedding_dim=0, n_components=0, categories=0):
    """Simulate a 2PL world and S jittered 'posterior draws' around the truth.

    Returns (draws, truth) where truth holds true abilities, new-item parameters and metadata.
    """
    K, M, J, S = n_bench, n_models, n_items, n_draws
    mu_b = rng.normal(0, 1, K)
    sd_b = rng.uniform(0.8, 1.5, K)
    mu_l = rng.normal(0, 0.2, K)
    sd_l = rng.uniform(0.2, 0.4, K)
    pop_loc = rng.normal(0, 0.5, K)
    pop_sd = rng.uniform(0.8, 1.2, K)
    ability = pop_loc + pop_sd * rng.normal(size=(M, K))
    bench = np.arange(J) % K
    diff = mu_b[bench] + sd_b[bench] * rng.normal(size=J)
    logd = mu_l[bench] + sd_l[bench] * rng.normal(size=J)

    def jit(x, scale=jitter):
        return x[None] + scale * rng.normal(size=(S, *np.shape(x)))

    arrays = dict(
        ability=jit(ability), difficulty=jit(diff), log_discrimination=jit(logd, 0.5 * jitter),
        mu_difficulty=jit(mu_b, 0.05), sigma_difficulty=np.abs(jit(sd_b, 0.03)),
        mu_log_discrimination=jit(mu_l, 0.02), sigma_log_discrimination=np.abs(jit(sd_l, 0.01)),
        ability_pop_loc=jit(pop_loc, 0.05), ability_pop_scale=np.abs(jit(pop_sd, 0.03)),
        item_benchmark=bench,
    )
    cat_ids = ()
    if categories:
        cat_ids = tuple(f"b{k}/c{c}" for k in range(K) for c in range(categories))
        arrays["category_offset"] = jit(rng.normal(0, 0.5, len(cat_ids)), 0.05)
        arrays["item_category"] = bench * categories + rng.integers(0, categories, J)
        arrays["category_benchmark"] = np.repeat(np.arange(K), categories)
    if guess:
        arrays["guess"] = np.clip(jit(np.full(K, 0.2), 0.01), 0.01, 0.5)
    if embedding_dim:
        arrays["embedding_coef"] = jit(rng.normal(0, 0.3, (K, n_components)), 0.02)
        arrays["embedding_pca_mean"] = rng.normal(size=embedding_dim)
        arrays["embedding_pca_components"] = np.linalg.qr(
            rng.normal(size=(embedding_dim, n_components)))[0].T
        arrays["embedding_pca_scale"] = rng.uniform(0.5, 2, n_components)
    draws = PosteriorDraws.from_arrays(
        model_ids=[f"m{i}" for i in range(M)], item_ids=[f"i{j}" for j in range(J)],
        benchmark_ids=[f"b{k}" for k in range(K)], category_ids=cat_ids, **arrays)
    new_bench = np.arange(n_new) % K
    truth = dict(
        ability=ability, diff=diff, logd=logd, mu_b=mu_b, sd_b=sd_b, mu_l=mu_l, sd_l=sd_l,
        new_bench=new_bench,
        new_diff=mu_b[new_bench] + sd_b[new_bench] * rng.normal(size=n_new),
        new_logd=mu_l[new_bench] + sd_l[new_bench] * rng.normal(size=n_new),
    )
    return draws, truth
