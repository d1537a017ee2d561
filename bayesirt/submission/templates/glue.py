"""Glue between the competition's calls and bayesirt's numpy-only runtime.

Shipped in the submission ZIP as ``bayesirt_runtime/glue.py`` beside byte-for-byte copies of
the package ``bayesirt/predictive/`` and of ``bayesirt/data/`` and ``bayesirt/errors.py``.
``model.py`` and ``labeling.py`` are
thin wrappers around :func:`train`, :func:`predict` and :func:`score`, which share one cache
(this module's globals): the posterior is read once per process.

What the glue does, and nothing more:

* parse ``train_dir``/``test_dir`` with ``data.load`` (the package's one parser);
* describe the items the posterior does not know (the test items, and any training item
  missing from the fit) as ``predictive.ItemInfo`` (benchmark, category, embedding row),
  and fold in, as ``evidence``, every training response whose model or item the posterior
  lacks (when train_dir is the data the posterior was fitted on, its fingerprint matches
  and there is none): both with ``predictive.inputs``, as ``bayesirt predict`` does;
* turn ``labeled_pairs`` dicts into label arrays with ``data.read_labeled_pairs``;
* call ``predictive.predict_pairs`` / ``predictive.score_pairs``.

Python 3.10 compatible; numpy, scipy and pandas only. Writes nothing to disk.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import numpy as np

from . import data as _data
from . import predictive as _predictive

BUNDLE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACT = os.path.join(BUNDLE_DIR, "posterior_flat.nc")
MANIFEST = os.path.join(BUNDLE_DIR, "manifest.json")

# One process, one posterior: the platform calls train, score_pairs, predict in a row.
_CACHE: dict = {}


class SubmissionInputError(ValueError):
    """The data handed to the submission cannot be predicted; the message says what to do."""


def _note(msg: str) -> None:
    print(f"[bayesirt submission] {msg}", file=sys.stderr, flush=True)


def manifest() -> dict:
    """Return the bundle's manifest.json (cached).

    Raises
    ------
    FileNotFoundError
        If manifest.json is missing from the ZIP.
    """
    if "manifest" not in _CACHE:
        if not os.path.isfile(MANIFEST):
            raise FileNotFoundError(
                f"manifest.json missing from the ZIP (looked in {BUNDLE_DIR}); rebuild the "
                "submission with `bayesirt bundle`"
            )
        with open(MANIFEST, encoding="utf-8") as fh:
            _CACHE["manifest"] = json.load(fh)
    return _CACHE["manifest"]


def draws() -> _predictive.PosteriorDraws:
    """Return the posterior draws of the bundled artifact (read once).

    Raises
    ------
    FileNotFoundError
        If ``posterior_flat.nc`` is missing from the ZIP.
    ValueError
        If the artifact cannot be read (see ``predictive.load_flat``).
    """
    if "draws" not in _CACHE:
        if not os.path.isfile(ARTIFACT):
            raise FileNotFoundError(
                f"posterior artifact posterior_flat.nc missing from the ZIP (looked in "
                f"{BUNDLE_DIR}); rebuild the submission with `bayesirt bundle posterior.nc`"
            )
        _CACHE["draws"] = _predictive.load_flat(ARTIFACT)
    return _CACHE["draws"]


def _load(train_dir: str, test_dir: str | None) -> _data.IRTData:
    key = ("data", os.path.abspath(train_dir), os.path.abspath(test_dir) if test_dir else None)
    if key not in _CACHE:
        if not os.path.isdir(train_dir):
            raise SubmissionInputError(f"train_dir {train_dir!r} is not a folder")
        if test_dir and not os.path.isdir(test_dir):
            raise SubmissionInputError(f"test_dir {test_dir!r} is not a folder")
        with warnings.catch_warnings():
            # data.load warns about test models absent from training; handled below.
            warnings.simplefilter("ignore", _data.DataWarning)
            loaded = _data.load(train_dir, test_dir or None)
        # Keep one parsed data set: train() loads train_dir alone, predict() with test_dir.
        for k in [k for k in _CACHE if isinstance(k, tuple) and k[0] == "data"]:
            del _CACHE[k]
        _CACHE[key] = loaded
    return _CACHE[key]


def _inputs(d: _data.IRTData) -> dict:
    """Build ``new_items`` and ``evidence`` for predictive from parsed data.

    Returns a dict with ``new_items`` (dict item_id -> ItemInfo for every item of ``d`` the
    posterior lacks), ``new_models`` (their metadata, for models the posterior lacks),
    ``evidence`` ((model_ids, item_ids, y) of training responses whose
    model or item the posterior lacks, or None) and ``n_evidence``; built by
    ``predictive.inputs``, the implementation ``bayesirt predict`` uses.
    """
    dr = draws()
    new_items = _predictive.inputs.new_items(dr, d)
    evidence = _predictive.inputs.evidence(dr, d)
    n_evidence = 0 if evidence is None else len(evidence[2])
    return {"new_items": new_items, "evidence": evidence, "n_evidence": n_evidence,
            "new_models": _predictive.inputs.new_models(dr, d)}


def train(train_dir: str) -> None:
    """Check train_dir against the artifact and prepare what the posterior lacks.

    Parameters
    ----------
    train_dir : str
        The competition's training folder.

    Raises
    ------
    FileNotFoundError
        If the artifact or manifest is missing from the ZIP.
    ValueError
        If train_dir cannot be parsed (the message names the file and row).
    """
    dr = draws()
    d = _load(train_dir, None)
    expected = manifest().get("fingerprint", "")
    prep = _inputs(d)
    _CACHE["train_dir"] = os.path.abspath(train_dir)
    if expected and d.fingerprint != expected:
        _note(
            "train_dir differs from the data the posterior was fitted on (fingerprint "
            f"{d.fingerprint[:12]} vs {expected[:12]}); folding in {prep['n_evidence']:,} "
            f"responses on {len(prep['new_items']):,} items and the models it lacks"
        )
    elif prep["n_evidence"]:
        _note(f"folding in {prep['n_evidence']:,} training responses the posterior lacks")
    _CACHE["ready"] = (dr.n_draws, d.n_obs)


def _pairs_and_inputs(train_dir: str, test_dir: str):
    d = _load(train_dir, test_dir)
    if d.test_model_idx is None or d.test_item_idx is None:
        raise SubmissionInputError(f"{test_dir}: test_pairs.csv was not found or not read")
    model_ids = np.asarray(d.model_ids, dtype=object)
    item_ids = np.asarray(d.item_ids, dtype=object)
    t_models = model_ids[d.test_model_idx]
    t_items = item_ids[d.test_item_idx]
    known_models = set(draws().model_ids)
    # A model with no training response and no place in the posterior can only be guessed
    # from the population prior; the competition promises this never happens, so say so.
    seen = np.zeros(d.n_models, dtype=bool)
    seen[d.model_idx] = True
    for m in sorted(set(t_models.tolist())):
        if m not in known_models and not seen[d.model_index[m]]:
            raise SubmissionInputError(
                f"test pair references model {m!r} unknown to the artifact and absent from "
                f"train_dir {train_dir}; every test model must have training responses (add "
                "them to train_dir, or refit and rebundle the posterior)"
            )
    return t_models, t_items, _inputs(d)


def _options(kind: str, d: _data.IRTData | None) -> dict:
    """Keyword options for predictive from the manifest (``neighbours`` built from data)."""
    opts = dict(manifest().get(kind, {}))
    for key, value in list(opts.items()):
        if isinstance(value, list):
            opts[key] = tuple(value)
    if opts.pop("neighbours", False):
        if d is None or d.item_embeddings is None:
            _note("neighbours requested but no item embeddings are at hand (no test_dir "
                  "given, or no embedding files): the neighbour prior is not used")
        else:
            # Training responses too: the neighbours' residuals give local ability offsets.
            opts["neighbours"] = _predictive.inputs.neighbours(d)
    return opts


def _labels(labeled_pairs):
    if labeled_pairs is None or len(labeled_pairs) == 0:
        return None
    m, i, y = _data.read_labeled_pairs(list(labeled_pairs))
    return (m, i, y)


def predict(train_dir: str, test_dir: str, labeled_pairs) -> list[dict]:
    """Posterior-averaged P(correct) for every row of test_dir/test_pairs.csv.

    Parameters
    ----------
    train_dir, test_dir : str
        The competition's folders.
    labeled_pairs : list of dict
        Revealed test labels: ``model_id``, ``item_id`` and a label key (``response``,
        ``label``, ``correct``, ``is_correct``, ``y`` or ``value``).

    Returns
    -------
    list of dict
        ``{"model_id", "item_id", "predicted_probability"}`` per test pair, in file order.

    Raises
    ------
    SubmissionInputError
        If a test model is unknown to both the posterior and train_dir.
    ValueError
        On unparseable files or labels (the message names the file/row or the keys seen).
    """
    t_models, t_items, prep = _pairs_and_inputs(train_dir, test_dir)
    p = _predictive.predict_pairs(
        draws(), t_models.tolist(), t_items.tolist(), new_items=prep["new_items"],
        new_models=prep.get("new_models"), labels=_labels(labeled_pairs),
        evidence=prep["evidence"],
        **_options("predict_options", _load(train_dir, test_dir)),
    )
    return [
        {"model_id": m, "item_id": i, "predicted_probability": float(x)}
        for m, i, x in zip(t_models.tolist(), t_items.tolist(), p.tolist(), strict=True)
    ]


def score(test_pairs, train_dir: str = "", test_dir: str = "") -> list[float]:
    """Score candidate pairs for labelling (higher = label first).

    Parameters
    ----------
    test_pairs : list of dict
        Candidates with ``model_id`` and ``item_id``.
    train_dir, test_dir : str, optional
        The competition's folders. Without ``test_dir`` the candidates' items are described
        by the benchmark named before ":" in their id when the posterior knows it, else get
        the pooled prior; without ``train_dir`` the one given to ``train`` is used.

    Returns
    -------
    list of float
        One finite score per candidate, same order.

    Raises
    ------
    KeyError
        If a candidate lacks ``model_id`` or ``item_id``.
    """
    models = [str(p["model_id"]) for p in test_pairs]
    items = [str(p["item_id"]) for p in test_pairs]
    if not models:
        return []
    train_dir = train_dir or _CACHE.get("train_dir", "")
    dr = draws()
    d = None
    if train_dir and test_dir:
        _, _, prep = _pairs_and_inputs(train_dir, test_dir)
        d = _load(train_dir, test_dir)
    else:
        prep = {"new_items": {}, "evidence": None}
        if train_dir:
            d = _load(train_dir, None)
            prep = _inputs(d)
        known = set(dr.item_ids)
        benches = set(dr.benchmark_ids)
        for item in set(items) - known - set(prep["new_items"]):
            b = item.split(":", 1)[0] if ":" in item else ""
            prep["new_items"][item] = _predictive.ItemInfo(benchmark_id=b if b in benches else "")
    method = manifest().get("acquisition", "bald")
    s = _predictive.score_pairs(
        dr, models, items, new_items=prep["new_items"], new_models=prep.get("new_models"),
        evidence=prep["evidence"], method=method,
        **_options("score_options", d if test_dir else None),
    )
    return [float(x) for x in np.asarray(s, dtype=np.float64).tolist()]
