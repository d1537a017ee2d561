"""Leave-one-benchmark-out, as the organisers' streaming platform scores it (numpy only).

For a held-out benchmark ``B`` (the posterior must not have seen it): every
(model, ``B``) pair with at least ``min_items`` distinct items takes part; each pair's items
are split 50/50 into an acquisition pool and a scored pool, either per pair
(``scope="pair"``: an item may be scored for one model and labelled for another) or per
benchmark item (``scope="item"``: no label ever lands on a scored item); labels are revealed
in a random order per pair (the platform's default random rule spends the budget uniformly
over the pool, which in distribution is a random order), budget-major at 0, 1, 3, 7, 15, 31
labels per pair, and at each budget ONE shared list of every pair's labels conditions every
prediction. Score per budget: Brier (and log-loss) per pair over its scored items, averaged
equally over pairs; ALC = 0.1 B0 + 0.2 (B1 + B3 + B7 + B15) + 0.1 B31
(``../shared/docs/streaming.md``).

Baselines beside it: the organisers' empirical mean (0.5 with no labels, then the pair's
raw label mean) and a smoothed mean (Beta with 2 pseudo-counts towards the model's training
accuracy on the other benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bayesirt.errors import InputError
from bayesirt.submission.scoring import LOGLOSS_EPS

#: Labels per pair at the platform's checkpoints.
BUDGETS = (0, 1, 3, 7, 15, 31)
#: ALC weights of the checkpoints, in BUDGETS order.
ALC_WEIGHTS = (0.1, 0.2, 0.2, 0.2, 0.2, 0.1)
#: Split scopes: per (model, benchmark) pair, or per benchmark item.
SCOPES = ("pair", "item")
#: Predictors scored beside the engine.
BASELINES = ("empirical_mean", "smoothed_mean")


@dataclass(frozen=True)
class HeldOutTask:
    """One held-out benchmark's pairs, split and ordered.

    Attributes
    ----------
    benchmark : str
    scope : str
        ``"pair"`` or ``"item"``.
    seed : int
    models : tuple of str, (P,)
        The pairs' models.
    acquire : tuple of (item_ids ndarray, y ndarray), (P,)
        Each pair's acquisition pool in the order its labels are revealed.
    score : tuple of (item_ids ndarray, y ndarray), (P,)
        Each pair's scored pool.
    """

    benchmark: str
    scope: str
    seed: int
    models: tuple[str, ...]
    acquire: tuple[tuple[np.ndarray, np.ndarray], ...]
    score: tuple[tuple[np.ndarray, np.ndarray], ...]

    def labels(self, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the shared label list at ``budget`` labels per pair: (models, items, y)."""
        m, i, y = [], [], []
        for model, (items, ys) in zip(self.models, self.acquire, strict=True):
            n = min(budget, items.size)
            m += [model] * n
            i += list(items[:n])
            y += list(ys[:n])
        return (np.asarray(m, dtype=object), np.asarray(i, dtype=object),
                np.asarray(y, dtype=np.int8))

    def scored_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every scored (model, item): model_ids, item_ids, y, pair index; each (n,)."""
        m = np.concatenate([[mod] * items.size for mod, (items, _) in
                            zip(self.models, self.score, strict=True)]).astype(object)
        i = np.concatenate([items for items, _ in self.score]).astype(object)
        y = np.concatenate([ys for _, ys in self.score]).astype(np.int8)
        pair = np.concatenate([np.full(items.size, p) for p, (items, _) in
                               enumerate(self.score)])
        return m, i, y, pair


def make_task(model_ids: np.ndarray, item_ids: np.ndarray, y: np.ndarray, benchmark: str, *,
              scope: str = "pair", seed: int = 0, min_items: int = 80) -> HeldOutTask:
    """Split one benchmark's responses into the platform's pairs and pools.

    Parameters
    ----------
    model_ids, item_ids : ndarray of str, shape (n,)
        Every response on the held-out benchmark.
    y : ndarray of int, shape (n,)
        0/1.
    benchmark : str
    scope : {"pair", "item"}
    seed : int
        Seed of the split and the label order.
    min_items : int
        Pairs with fewer distinct items are left out (the platform's rule: 80).

    Returns
    -------
    HeldOutTask

    Raises
    ------
    InputError
        On an unknown scope, or when no pair has ``min_items`` items.
    """
    if scope not in SCOPES:
        raise InputError(f"scope must be one of {SCOPES}, got {scope!r}")
    rng = np.random.default_rng([int(seed), _stable_hash(benchmark)])
    model_ids = np.asarray(model_ids, dtype=object)
    item_ids = np.asarray(item_ids, dtype=object)
    y = np.asarray(y, dtype=np.int8)
    uniq_items = np.unique(item_ids.astype(str))
    # Per item scope: one 50/50 assignment of the benchmark's items for every pair.
    in_acq_item = dict(zip(uniq_items.tolist(),
                           (rng.permutation(uniq_items.size) < uniq_items.size // 2).tolist(),
                           strict=True))
    models, acquire, score = [], [], []
    for model in sorted(set(model_ids.astype(str).tolist())):
        rows = np.flatnonzero(model_ids == model)
        # One response per item (the first), in a random order.
        _, first = np.unique(item_ids[rows].astype(str), return_index=True)
        rows = rows[np.sort(first)]
        if rows.size < min_items:
            continue
        rows = rows[rng.permutation(rows.size)]
        if scope == "pair":
            acq = np.zeros(rows.size, bool)
            acq[: rows.size // 2] = True
        else:
            acq = np.asarray([in_acq_item[str(i)] for i in item_ids[rows]], bool)
        models.append(model)
        acquire.append((item_ids[rows[acq]], y[rows[acq]]))
        score.append((item_ids[rows[~acq]], y[rows[~acq]]))
    if not models:
        raise InputError(f"benchmark {benchmark!r}: no (model, benchmark) pair has >= "
                         f"{min_items} distinct items")
    return HeldOutTask(benchmark, scope, int(seed), tuple(models), tuple(acquire), tuple(score))


def pair_scores(y: np.ndarray, p: np.ndarray, pair: np.ndarray) -> dict[str, float]:
    """Brier and log-loss per pair, averaged equally over pairs."""
    p = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise InputError("predictions must be finite probabilities in [0, 1]")
    q = np.clip(p, LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    brier, ll = [], []
    for k in np.unique(pair):
        on = pair == k
        brier.append(np.mean((p[on] - y[on]) ** 2))
        ll.append(-np.mean(y[on] * np.log(q[on]) + (1 - y[on]) * np.log1p(-q[on])))
    return {"brier": float(np.mean(brier)), "log_loss": float(np.mean(ll))}


def baseline_predictions(name: str, task: HeldOutTask, budget: int,
                         train_accuracy: dict[str, float]) -> np.ndarray:
    """Return a baseline's predictions of ``task.scored_pairs()`` at ``budget`` labels."""
    out = []
    for model, (items, ys), (s_items, _) in zip(task.models, task.acquire, task.score,
                                                strict=True):
        seen = ys[: min(budget, items.size)].astype(np.float64)
        if name == "empirical_mean":
            p = 0.5 if seen.size == 0 else float(seen.mean())
        elif name == "smoothed_mean":
            prior = train_accuracy.get(model, 0.5)
            p = (seen.sum() + 2.0 * prior) / (seen.size + 2.0)
        else:
            raise InputError(f"unknown baseline {name!r}; known: {BASELINES}")
        out.append(np.full(s_items.size, p))
    return np.concatenate(out)


def alc(briers: Sequence[float]) -> float:
    """Area under the learning curve: the ALC weights times the Briers at BUDGETS."""
    if len(briers) != len(BUDGETS):
        raise InputError(f"ALC needs {len(BUDGETS)} Brier scores, got {len(briers)}")
    return float(np.dot(ALC_WEIGHTS, briers))


def run_task(task: HeldOutTask, predict: Callable[..., np.ndarray],
             train_accuracy: dict[str, float], budgets: Sequence[int] = BUDGETS,
             progress: Callable[[str], None] | None = None) -> list[dict]:
    """Score the engine and the baselines at every budget of one task.

    Parameters
    ----------
    task : HeldOutTask
    predict : callable
        ``predict(model_ids, item_ids, labels) -> ndarray (n,)`` of P(correct); ``labels``
        is the shared (model_ids, item_ids, y) list.
    train_accuracy : dict of str to float
        Each model's accuracy on the training benchmarks (the smoothed mean's prior).
    budgets : sequence of int
    progress : callable, optional
        Called with one line per budget.

    Returns
    -------
    list of dict
        One record per (predictor, budget): benchmark, scope, seed, predictor, budget,
        brier, log_loss, n_pairs, n_scored.
    """
    m, i, y, pair = task.scored_pairs()
    records = []
    for budget in budgets:
        labels = task.labels(budget)
        preds = {"bayesirt": np.asarray(predict(m, i, labels), dtype=np.float64)}
        for name in BASELINES:
            preds[name] = baseline_predictions(name, task, budget, train_accuracy)
        for name, p in preds.items():
            records.append({"benchmark": task.benchmark, "scope": task.scope, "seed": task.seed,
                            "predictor": name, "budget": int(budget),
                            **pair_scores(y, p, pair), "n_pairs": len(task.models),
                            "n_scored": int(y.size)})
        if progress is not None:
            b = {r["predictor"]: r["brier"] for r in records[-len(preds):]}
            progress(f"{task.benchmark} ({task.scope}, seed {task.seed}) budget {budget}: "
                     + ", ".join(f"{k} Brier {v:.4f}" for k, v in b.items()))
    return records


def _stable_hash(text: str) -> int:
    """Return a process-independent 32-bit hash (Python's hash() is salted per process)."""
    h = 2166136261
    for byte in text.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h
