"""The organisers' streaming protocol: ``predict(input, labeled) -> float`` (numpy only).

The platform (``../shared/docs/streaming.md``) calls ``predict([subject, item], labeled)``
once per (subject, item) of benchmarks the posterior has never seen, with ONE shared list
of every label bought so far, and recreates its worker processes at every checkpoint. So a
prediction must be a pure function of ``(input, labeled)``: :class:`StreamingPredictor`
turns the dicts into the engine's ids and calls the same engine as
:func:`~.predict.predict_pairs`, and caches, per content of ``labeled``, the conditioning
(the new benchmarks' chains), so that the 1,000 calls of a checkpoint cost one
conditioning.

Identities (all derived from the dicts' content, so any process derives the same):

* a subject is the posterior's model whose id equals its ``normalized_name`` (case
  ignored on a second try); any other subject is a model the posterior does not know, named
  ``"subject:<normalized_name>#<hash of every field>"``, whose ability prior comes from its
  metadata (``provider`` as the organisation, ``release_date``, the size and the instruct
  flag read from the name; :func:`subject_info`) when the posterior was fitted with it;
* an item is ``"item:<hash of benchmark_id, item_content, item_features, interactors>"``;
* a benchmark is ``"stream:<benchmark_id>"``: always new to the posterior (the platform's
  benchmarks are disjoint from the public ones), its level drawn from the population of
  benchmarks and conditioned on its labels (:mod:`.newbench`).

Purity is kept although one cached engine answers many calls: everything the engine
computes for a (model, item) depends on that model's and that benchmark's labels and ids
only (seeds from content, per-id strata; ``tests/test_streaming.py`` checks it against
fresh engines and across processes). An item without labels of its own is predicted from
its benchmark's item prior, the same for every such item: the engine is asked once per
benchmark ("prototype" item).

Acquisition (``acquisition_function``): ``"random"`` is the platform's own rule (buy iff
``u < min(1, labels_remaining / items_remaining)``, ``u`` from sha256 of the call); ``"bald"``
scales that pace by the candidate's mutual information relative to a fresh item's of the
same pair (an item that other subjects' labels already pin is skipped more often).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..features import instruct_from_name, param_count_from_name, parse_release_date
from .draws import PosteriorDraws
from .engine import _Engine
from .items import ItemInfo
from .subjects import ModelInfo
from .weights import P_MIN, _entropy, _wsum

__all__ = ["ACQUISITION_POLICIES", "ITEM_FIELDS", "SUBJECT_FIELDS", "StreamingPredictor",
           "platform_random_u", "subject_info"]

SUBJECT_FIELDS = ("normalized_name", "provider", "release_date", "access_date", "harness",
                  "harness_version", "reasoning_effort", "subject_features_extra")
ITEM_FIELDS = ("item_content", "item_features", "interactors", "benchmark_id")
ACQUISITION_POLICIES = ("random", "bald")
#: Prefix of a streamed benchmark's id in the engine (never one the posterior knows).
BENCH_PREFIX = "stream:"
_PROTOTYPE = "\x1f<an item without labels>"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _check_pair(value: Any, where: str) -> tuple[Mapping, Mapping]:
    """Return (subject, item) of an ``input``; errors name the position and the field."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise InputError(f"{where} must be [subject, item] (two dicts), got "
                         f"{type(value).__name__} {_short(value)}")
    subject, item = value
    if not isinstance(subject, Mapping):
        raise InputError(f"{where}[0] (subject) must be a dict, got {type(subject).__name__}")
    if not isinstance(item, Mapping):
        raise InputError(f"{where}[1] (item) must be a dict, got {type(item).__name__}")
    if not _text(item.get("benchmark_id")).strip():
        raise InputError(f"{where}[1] (item) has no benchmark_id (got "
                         f"{item.get('benchmark_id')!r}): items are grouped by it")
    return subject, item


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _label(value: Any, where: str) -> int:
    """0 or 1 from a label (int, bool, float 0.0/1.0 or "0"/"1"), else an InputError."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value) in (0.0, 1.0):
        return int(value)
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    raise InputError(f"{where} label is {_short(value)}: labels must be 0 or 1")


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\x1e".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def subject_info(subject: Mapping) -> ModelInfo:
    """Return the metadata of a subject the posterior does not know, from its fields.

    Organisation = ``provider``; release date parsed (unparseable: unknown);
    parameter count and instruct flag read from ``normalized_name``.
    """
    name = _text(subject.get("normalized_name"))
    try:
        release = parse_release_date(_text(subject.get("release_date")) or None)
    except InputError:  # an odd date says nothing; it must not fail the prediction
        release = math.nan
    return ModelInfo(org=_text(subject.get("provider")).strip(),
                     param_count=param_count_from_name(name),
                     is_instruct=instruct_from_name(name), release_year=release)


def platform_random_u(input: Any, context: Mapping) -> float:
    """Return the platform's uniform of a candidate: sha256 of ``[context, input]`` / 2**64."""
    blob = json.dumps([context, input], sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:8], "big") / 2.0**64


class _Checkpoint:
    """One content of ``labeled``: its labels as engine inputs and a lazily built engine."""

    def __init__(self, owner: StreamingPredictor, rows: list[tuple[str, str, str, int]],
                 infos: dict[str, ModelInfo]) -> None:
        self.owner = owner
        self.lab_m = np.asarray([r[0] for r in rows], dtype=object)
        self.lab_i = np.asarray([r[1] for r in rows], dtype=object)
        self.lab_y = np.asarray([r[3] for r in rows], dtype=np.int8)
        self.item_bench = {r[1]: r[2] for r in rows}
        self.infos = dict(infos)
        self.subjects = set(self.lab_m.tolist())
        self.benches = set(self.item_bench.values())
        self.engine: _Engine | None = None
        self.states: dict[str, Any] = {}
        self.memo: dict[tuple[str, str], float] = {}

    def _build(self) -> _Engine:
        items = {i: ItemInfo(benchmark_id=b) for i, b in self.item_bench.items()}
        items.update({b + _PROTOTYPE: ItemInfo(benchmark_id=b) for b in self.benches})
        with warnings.catch_warnings():
            # Unknown subjects are expected here (the platform's subjects are anonymous to
            # the fit); the engine's one-line notices would go to the platform's log.
            warnings.simplefilter("ignore")
            return _Engine(self.owner.draws, np.asarray(sorted(self.subjects), dtype=object),
                           np.asarray(sorted(b + _PROTOTYPE for b in self.benches), dtype=object),
                           items, (self.lab_m, self.lab_i, self.lab_y), None,
                           self.owner.quad_nodes, None, self.owner.min_ess,
                           self.owner.item_draws, None, 20, self.infos)

    def state(self, sid: str, info: ModelInfo | None, item_id: str, bench: str
              ) -> tuple[_Engine, Any, int]:
        """Return the engine, the item's weighted points and the subject's engine index."""
        if sid not in self.subjects or bench not in self.benches or self.engine is None:
            self.subjects.add(sid)
            self.benches.add(bench)
            if info is not None:
                self.infos[sid] = info
            # Rebuilding changes nothing already computed (see the module docstring): it
            # happens only for a subject or benchmark without labels, i.e. cheaply.
            self.engine = self._build()
            self.states.clear()
        key = item_id if item_id in self.item_bench else bench + _PROTOTYPE
        st = self.states.get(key)
        if st is None:
            st = self.states[key] = self.engine.item_state(key)
        return self.engine, st, self.engine.model_index[sid]

    def probability(self, sid: str, info: ModelInfo | None, item_id: str, bench: str) -> float:
        key = (sid, item_id if item_id in self.item_bench else bench + _PROTOTYPE)
        p = self.memo.get(key)
        if p is None:
            eng, st, mi = self.state(sid, info, item_id, bench)
            raw = float(eng.mean_probs(st, np.asarray([mi], dtype=np.int64))[0])
            p = self.memo[key] = float(np.clip(raw if math.isfinite(raw) else 0.5,
                                               P_MIN, 1.0 - P_MIN))
        return p

    def bald(self, sid: str, info: ModelInfo | None, item_id: str, bench: str) -> float:
        """Mutual information (nats) between the label of (subject, item) and its p."""
        eng, st, mi = self.state(sid, info, item_id, bench)
        P = eng.probs(st, np.asarray([mi], dtype=np.int64))[:, 0].astype(np.float64)
        w = st.w.reshape(-1)
        p_bar = float(_wsum(w.astype(np.float32), P[:, None])[0])
        return max(float(_entropy(np.asarray(p_bar)) - w @ _entropy(P)), 0.0)


class StreamingPredictor:
    """Answer the streaming protocol's calls from one posterior.

    Parameters
    ----------
    draws : PosteriorDraws
        The posterior (thinned to ``max_draws`` once, evenly, as ``predict_pairs`` does).
    max_draws : int or None
        Draws kept (default 1000, ``predict_pairs``'s default).
    item_draws : int or None
        Draws within which a new item is integrated (known benchmarks only; a new
        benchmark's chains fix theirs).
    quad_nodes : (int, int)
        Item quadrature nodes, as in ``predict_pairs``.
    min_ess : float
    cache_size : int
        Label contents whose conditioning is kept (one per checkpoint suffices).
    """

    def __init__(self, draws: PosteriorDraws, *, max_draws: int | None = 1000,
                 item_draws: int | None = 32, quad_nodes: tuple[int, int] = (49, 13),
                 min_ess: float = 20.0, cache_size: int = 4) -> None:
        self.draws = draws if max_draws is None else draws.thin(max_draws)
        self.item_draws = item_draws
        self.quad_nodes = quad_nodes
        self.min_ess = float(min_ess)
        self.cache_size = max(1, int(cache_size))
        self._known = set(self.draws.model_ids)
        self._lower = {}
        for m in self.draws.model_ids:
            self._lower.setdefault(m.lower(), m)
        self._cache: OrderedDict[str, _Checkpoint] = OrderedDict()
        self._last: tuple[Any, int, str] | None = None

    # -- identities ---------------------------------------------------------------------------

    def subject_id(self, subject: Mapping) -> tuple[str, ModelInfo | None]:
        """Engine id of a subject and, for one the posterior does not know, its metadata."""
        name = _text(subject.get("normalized_name")).strip()
        if name in self._known:
            return name, None
        if name.lower() in self._lower:
            return self._lower[name.lower()], None
        fields = [_text(subject.get(f)) for f in SUBJECT_FIELDS]
        extra = sorted(set(map(str, subject)) - set(SUBJECT_FIELDS))
        fields += [f"{k}={_text(subject.get(k))}" for k in extra]
        return f"subject:{name}#{_digest(fields)[:12]}", subject_info(subject)

    @staticmethod
    def item_id(item: Mapping) -> tuple[str, str]:
        """(engine item id, engine benchmark id) of an item dict."""
        bench = BENCH_PREFIX + _text(item.get("benchmark_id")).strip()
        return "item:" + _digest([_text(item.get(f)) for f in ITEM_FIELDS])[:24], bench

    # -- the checkpoint cache ----------------------------------------------------------------

    def _checkpoint(self, labeled: Any) -> _Checkpoint:
        if labeled is None:
            labeled = []
        if not isinstance(labeled, (list, tuple)):
            raise InputError(f"labeled must be a list of [[subject, item], label], got "
                             f"{type(labeled).__name__}")
        # The same list object at the same length as the last call: the same content (the
        # platform hands one list to every call of a checkpoint and only ever appends). The
        # object itself is held, not its id(): a freed list's id can be reused by another.
        # (A list mutated in place between calls, at the same length, would be missed.)
        if self._last is not None and self._last[0] is labeled and \
                self._last[1] == len(labeled) and self._last[2] in self._cache:
            return self._cache[self._last[2]]
        rows, infos, keys = [], {}, []
        for r, entry in enumerate(labeled):
            where = f"labeled[{r}]"
            if not isinstance(entry, (list, tuple)) or len(entry) != 2:
                raise InputError(f"{where} must be [[subject, item], label], got "
                                 f"{_short(entry)}")
            subject, item = _check_pair(entry[0], f"{where}[0]")
            y = _label(entry[1], where)
            sid, info = self.subject_id(subject)
            iid, bench = self.item_id(item)
            rows.append((sid, iid, bench, y))
            if info is not None:
                infos[sid] = info
            keys.append(f"{sid}\x1f{iid}\x1f{y}")
        key = _digest(sorted(keys))
        self._last = (labeled, len(labeled), key)
        cp = self._cache.get(key)
        if cp is None:
            rows.sort()
            cp = self._cache[key] = _Checkpoint(self, rows, infos)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return cp

    # -- the protocol ------------------------------------------------------------------------

    def predict(self, input: Any, labeled: Any) -> float:
        """P(correct) of ``input = [subject, item]`` given every label in ``labeled``.

        Raises
        ------
        InputError
            Naming the entry and field: a malformed input or label entry, an item without
            ``benchmark_id``, a label other than 0/1.
        """
        subject, item = _check_pair(input, "input")
        cp = self._checkpoint(labeled)
        sid, info = self.subject_id(subject)
        iid, bench = self.item_id(item)
        return cp.probability(sid, info, iid, bench)

    def acquire(self, input: Any, labeled: Any, context: Mapping | None,
                policy: str = "random") -> bool:
        """Whether to buy the label of ``input`` now (a native bool).

        Parameters
        ----------
        input : [subject, item]
        labeled : list
            The labels so far.
        context : dict
            The platform's: ``labels_remaining``, ``items_remaining`` (this candidate
            included), ...
        policy : {"random", "bald"}
        """
        if policy not in ACQUISITION_POLICIES:
            raise InputError(f"acquisition policy must be one of {ACQUISITION_POLICIES}, "
                             f"got {policy!r}")
        context = dict(context or {})
        try:
            left = float(context.get("labels_remaining", 0))
            pool = float(context.get("items_remaining", 1))
        except (TypeError, ValueError):
            raise InputError(f"context labels_remaining / items_remaining must be numbers, "
                             f"got {context.get('labels_remaining')!r} / "
                             f"{context.get('items_remaining')!r}") from None
        if left <= 0:
            return False
        pace = min(1.0, left / max(pool, 1.0))
        if pace >= 1.0:
            return True
        u = platform_random_u(input, context)
        if policy == "random":
            return bool(u < pace)
        subject, item = _check_pair(input, "input")
        cp = self._checkpoint(labeled)
        sid, info = self.subject_id(subject)
        iid, bench = self.item_id(item)
        fresh = cp.bald(sid, info, bench + _PROTOTYPE, bench)
        ratio = 1.0 if fresh <= 0 else min(1.0, cp.bald(sid, info, iid, bench) / fresh)
        return bool(u < pace * ratio)
