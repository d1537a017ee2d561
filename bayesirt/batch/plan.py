"""Batch plans: parse and validate a TOML plan, expand its grid, name every fit.

A plan names data sets and the fits to run on them::

    data = "../data/real-multibench-small"     # or a list; relative to the plan file

    [defaults]                # every fit, unless [grid] or a [[fit]] says otherwise
    chains = 2
    warmup = 500
    draws = 500

    [grid]                    # the product of every list (scalars are fixed)
    model = ["rasch", "2pl", "hier2pl"]
    seed = [0, 1, 2]

    [[fit]]                   # single fits; a list here expands too
    model = "hier2pl"
    guess = true
    seed = [0, 1, 2]

    [batch]                   # how the batch runs, not what a fit is
    max_divergent_fraction = 0.1
    heldout = true
    neighbours = false

Every key and value is checked before any fit starts; a bad one raises
:class:`bayesirt.errors.InputError` naming the file, the line and the key (``tomllib`` gives
no line numbers, so the line is found by scanning the text for the key in its table). Each
fit gets a stable name from its settings and its data's fingerprint, so re-running a plan
finds the fits it already made.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bayesirt.batch.checks import FIT_KEYS, Checker, kind_name, table_settings, where
from bayesirt.errors import InputError

#: Batch-wide options of the ``[batch]`` table and their defaults.
BATCH_OPTIONS: dict[str, Any] = {"max_divergent_fraction": 0.1, "heldout": True,
                                 "neighbours": False}
#: What a batch fit uses where the plan is silent. ``log_likelihood`` is on (unlike
#: ``bayesirt fit``) because ``bayesirt compare`` needs it for PSIS-LOO.
BATCH_DEFAULTS: dict[str, Any] = {"seed": 0, "log_likelihood": True}
_TABLES = ("defaults", "grid", "fit", "batch")


@dataclass(frozen=True)
class FitSpec:
    """One fit of a batch: everything a worker needs, and the names that identify it.

    Attributes
    ----------
    name : str
        Folder name under the batch's output, e.g. ``hier2pl-guess-s0-1a2b3c4d``: model,
        options and seed to read, and the first 8 hex digits of ``settings_fingerprint``.
    data : str
        Absolute path of the data set (anything :func:`bayesirt.data.load` reads).
    data_fingerprint : str
        ``IRTData.fingerprint`` (sha256 of the training files).
    config : dict
        :class:`bayesirt.inference.FitConfig` fields (without ``progress``/``device``).
    settings_fingerprint : str
        sha256 of ``config`` and ``data_fingerprint``: equal settings, equal fingerprint.
    variant : str
        The same without the seed: fits equal but for the seed share it.
    label : str
        Model and options, e.g. ``hier2pl guess``.
    heldout : bool
        The data set has ``test/`` and ``reference/ground_truth.csv``.
    origin : str
        Where in the plan the fit comes from (``[grid]``, ``[[fit]] #2``).
    """

    name: str
    data: str
    data_fingerprint: str
    config: dict[str, Any]
    settings_fingerprint: str
    variant: str
    label: str
    heldout: bool
    origin: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what is sent to a worker and kept in summary.json)."""
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """A validated, expanded plan.

    Attributes
    ----------
    path : Path
        The plan file.
    fits : tuple of FitSpec
        Every fit, in plan order, duplicates merged.
    options : dict
        ``[batch]`` options (see ``BATCH_OPTIONS``).
    duplicates : int
        Fits listed more than once with equal settings (run once).
    """

    path: Path
    fits: tuple[FitSpec, ...]
    options: dict[str, Any] = field(default_factory=lambda: dict(BATCH_OPTIONS))
    duplicates: int = 0



class _DataSets:
    """Resolve, load (once) and fingerprint the data sets a plan names."""

    def __init__(self, check: Checker) -> None:
        self.check = check
        self.cache: dict[Path, tuple[str, bool]] = {}

    def get(self, raw: str, table: str | None, index: int | None) -> tuple[Path, str, bool]:
        from bayesirt import data as _data
        from bayesirt.diagnostics.heldout import locate

        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = (self.check.path.parent / path).resolve()
        if path not in self.cache:
            if not path.exists():
                raise self.check.fail(f"data {raw!r} does not exist ({path})", "data", table,
                                      index)
            try:
                loaded = _data.load(path)
            except (ValueError, OSError) as exc:
                raise self.check.fail(f"data {raw!r} cannot be read: {exc}", "data", table,
                                      index) from None
            try:
                heldout = path.is_dir() and bool(locate(path))
            except FileNotFoundError:
                heldout = False
            self.cache[path] = (str(loaded.fingerprint), heldout)
        fingerprint, heldout = self.cache[path]
        return path, fingerprint, heldout


def _sha(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _label(config: dict[str, Any]) -> tuple[str, list[str]]:
    """Model and non-default options, for people: ``("hier2pl guess", ["guess"])``."""
    parts = []
    if config.get("guess"):
        parts.append("guess")
    if config.get("contamination"):
        parts.append("contam")
    if config.get("outliers"):
        parts.append("outliers")
    if config.get("mass_matrix", "diagonal") != "diagonal":
        parts.append(f"mass-{config['mass_matrix']}")
    if config.get("embedding_components"):
        parts.append(f"emb{config['embedding_components']}")
    if config.get("parameterisation", "auto") != "auto":
        parts.append(config["parameterisation"])
    if config.get("init", "advi") != "advi":
        parts.append(f"init-{config['init']}")
    return " ".join([config["model"], *parts]), parts


def make_spec(config: dict[str, Any], data: Path, data_fingerprint: str, heldout: bool,
              origin: str) -> FitSpec:
    """Name one fit from its full settings and data fingerprint.

    Parameters
    ----------
    config : dict
        Complete :class:`bayesirt.inference.FitConfig` fields (defaults filled in).
    data : Path
        The data set.
    data_fingerprint : str
    heldout : bool
    origin : str

    Returns
    -------
    FitSpec
    """
    settings = {"config": config, "data_fingerprint": data_fingerprint}
    fingerprint = _sha(settings)
    variant = _sha({**settings, "config": {k: v for k, v in config.items() if k != "seed"}})
    label, parts = _label(config)
    name = "-".join([config["model"], *parts, f"s{config['seed']}", fingerprint[:8]])
    return FitSpec(name=name, data=str(data), data_fingerprint=data_fingerprint,
                   config=config, settings_fingerprint=fingerprint, variant=variant,
                   label=label, heldout=heldout, origin=origin)


def _full_config(check: Checker, choice: dict[str, Any], sources: dict[str, tuple],
                 origin: str) -> dict[str, Any]:
    """Fill FitConfig defaults in and check the settings that depend on each other."""
    from bayesirt.inference import FitConfig
    from bayesirt.models import get_model

    # The model's own sampler defaults (target_accept, draws) where the plan is silent.
    model = choice.get("model", BATCH_DEFAULTS.get("model", FitConfig.model))
    base = FitConfig(model=model).to_dict()
    config = {k: base[k] for k in FIT_KEYS}
    config.update(BATCH_DEFAULTS)
    config.update(choice)
    spec = get_model(config["model"])
    for option in ("guess", "contamination", "outliers", "embedding_components"):
        if config[option] and option not in spec.options:
            raise check.fail(
                f"model {config['model']!r} does not take {option} ({origin}; it takes: "
                f"{', '.join(spec.options) or 'no options'}); put such fits in a [[fit]] "
                "table of their own", option, *sources.get(option, (None, None)))
    if config["parameterisation"] != "auto" and config["model"] != "hier2pl":
        raise check.fail(f"parameterisation applies to hier2pl only, not {config['model']!r} "
                         f"({origin})", "parameterisation",
                         *sources.get("parameterisation", (None, None)))
    try:
        FitConfig(**config).validate()
    except ValueError as exc:
        raise check.fail(f"{exc} ({origin})", "model",
                         *sources.get("model", (None, None))) from None
    return config


def _expand(check: Checker, datasets: _DataSets, top_data: list[str] | None,
            defaults: dict[str, list[Any]], table: dict[str, list[Any]], name: str,
            index: int | None) -> list[FitSpec]:
    """Every fit of one [grid] or [[fit]] table (the product of its lists)."""
    origin = where(name, index)
    merged = {k: v for k, v in defaults.items()}
    sources = {k: ("defaults", None) for k in defaults}
    merged.update(table)
    sources.update({k: (name, index) for k in table})
    data_values = merged.pop("data", None) or top_data
    if not data_values:
        raise check.fail(f"{origin} names no data: set data = \"PATH\" at the top of the "
                         "plan or in the table", None, name, index)
    data_source = sources.get("data", (None, None))
    keys = sorted(merged)
    specs = []
    for raw_data in data_values:
        path, fingerprint, heldout = datasets.get(raw_data, *data_source)
        for combo in itertools.product(*(merged[k] for k in keys)):
            config = _full_config(check, dict(zip(keys, combo, strict=True)), sources, origin)
            specs.append(make_spec(config, path, fingerprint, heldout, origin))
    return specs


def parse_plan(text: str, path: str | Path) -> Plan:
    """Validate and expand a plan given as text.

    Parameters
    ----------
    text : str
        TOML text of the plan.
    path : str or Path
        Its file (for messages, and the folder relative data paths start from).

    Returns
    -------
    Plan

    Raises
    ------
    InputError
        On a TOML syntax error, an unknown table, key or value, a data set that does not
        exist or cannot be read, or a plan without fits; the message names the line.
    """
    path = Path(path)
    check = Checker(path, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    for key, value in doc.items():
        if key == "data":
            continue
        if key not in _TABLES:
            kind = "table" if isinstance(value, dict | list) and key != "data" else "key"
            known = ", ".join(f"[[{t}]]" if t == "fit" else f"[{t}]" for t in _TABLES)
            raise check.fail(f"unknown {kind} {key!r} (known: data, {known})", key, None)
        shape_ok = (isinstance(value, list) and all(isinstance(v, dict) for v in value)
                    if key == "fit" else isinstance(value, dict))
        if not shape_ok:
            form = "[[fit]] tables" if key == "fit" else f"a [{key}] table"
            raise check.fail(f"{key} must be {form}", key, None)
    top = doc.get("data")
    if top is not None:
        top = top if isinstance(top, list) else [top]
        if not top or not all(isinstance(v, str) for v in top):
            raise check.fail(f"data must be a path string or a list of them, got {doc['data']!r}",
                             "data", None)
    options = dict(BATCH_OPTIONS)
    for key, value in doc.get("batch", {}).items():
        if key not in BATCH_OPTIONS:
            raise check.fail(f"unknown key {key!r} in [batch] (known: "
                             f"{', '.join(BATCH_OPTIONS)})", key, "batch")
        want = type(BATCH_OPTIONS[key])
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or (want is float and not 0.0 < value <= 1.0):
            what = "a fraction in (0, 1]" if want is float else kind_name(want)
            raise check.fail(f"{key} in [batch] must be {what}, got {value!r}", key, "batch")
        options[key] = value
    defaults = table_settings(check, doc.get("defaults", {}), "defaults", None, lists=False)
    datasets = _DataSets(check)
    specs: list[FitSpec] = []
    if "grid" in doc:
        grid = table_settings(check, doc["grid"], "grid", None, lists=True)
        specs += _expand(check, datasets, top, defaults, grid, "grid", None)
    for i, table in enumerate(doc.get("fit", [])):
        settings = table_settings(check, table, "fit", i, lists=True)
        specs += _expand(check, datasets, top, defaults, settings, "fit", i)
    if not specs:
        raise InputError(f"{path}: the plan has no fits: add a [grid] table or [[fit]] tables")
    unique: dict[str, FitSpec] = {}
    for spec in specs:
        unique.setdefault(spec.settings_fingerprint, spec)
    return Plan(path=path, fits=tuple(unique.values()), options=options,
                duplicates=len(specs) - len(unique))


def load_plan(path: str | Path) -> Plan:
    """Read, validate and expand a plan file (see the module docstring for the format).

    Parameters
    ----------
    path : str or Path
        The ``.toml`` plan.

    Returns
    -------
    Plan

    Raises
    ------
    InputError
        When the file is missing or unreadable, or anything in it is wrong (one line naming
        the line and key; see :func:`parse_plan`).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such plan file" if not path.exists()
                         else f"{path}: is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read: {exc}") from None
    return parse_plan(text, path.resolve())
