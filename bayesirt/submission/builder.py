"""Build the competition submission ZIP from a fitted posterior.

ZIP root::

    model.py                          train() / predict(), from templates/model.py
    labeling.py                       score_pairs(), from templates/labeling.py
    bayesirt_runtime/__init__.py      marks the runtime package (generated)
    bayesirt_runtime/predictive/*.py  byte-for-byte copies of the package bayesirt/predictive/
    bayesirt_runtime/data/*.py        byte-for-byte copies of bayesirt/data/ (batch bundles)
    bayesirt_runtime/errors.py        byte-for-byte copy of bayesirt/errors.py
    bayesirt_runtime/features.py      byte-for-byte copy of bayesirt/features.py
    bayesirt_runtime/glue.py          calls of predictive from the platform's dicts (templates/)
    posterior_flat.nc                 the flat NetCDF3 artifact (predictive.save_flat)
    manifest.json                     version, model, config, fingerprint, draws, sha256s

The runtime is copied, never rewritten, so the container computes exactly what the package
computes (house rule 9).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import numpy as np

import bayesirt
from bayesirt.errors import InputError


def _predictive_default_draws() -> int:
    """Draws ``predictive.predict_pairs`` uses by default (it thins evenly to that many)."""
    from bayesirt import predictive

    default = inspect.signature(predictive.predict_pairs).parameters["max_draws"].default
    return int(default) if isinstance(default, int) and default > 0 else 1000


#: Most posterior draws an "auto" bundle keeps: as many as ``predict_pairs`` uses by default.
#: More would only grow the ZIP; and since both thin with the same evenly spaced rule, the
#: bundle then predicts exactly what the package predicts from the full posterior.
DEFAULT_MAX_DRAWS = _predictive_default_draws()
#: Size bound of the artifact for ``max_draws="auto"`` (the ZIP goal is < 100 MB; deflate
#: barely shrinks float32 draws, so the bound is on the uncompressed artifact).
AUTO_TARGET_BYTES = 95_000_000
#: Acquisition methods ``labeling.score_pairs`` may use (``bayesirt.predictive.score_pairs``).
ACQUISITIONS = ("bald", "epig")
#: Protocols a bundle serves: the seed's train/predict/score_pairs, or the live streaming one.
PROTOCOLS = ("batch", "streaming")
#: Acquisition policies of a streaming bundle's hook (``predictive.streaming``).
STREAM_ACQUISITIONS = ("random", "bald")
#: Runtime packages a streaming bundle leaves out (data/ parses files and needs pandas; the
#: streaming protocol has no files).
_STREAM_EXCLUDED = ("data",)
ARTIFACT_NAME = "posterior_flat.nc"
MANIFEST_NAME = "manifest.json"
RUNTIME_PACKAGE = "bayesirt_runtime"
#: Modules of the package copied verbatim into the runtime package (besides the packages of
#: :data:`RUNTIME_SUBPACKAGES`, see :func:`_runtime_files`).
RUNTIME_MODULES = ("errors.py", "features.py")
#: Packages of bayesirt copied verbatim (every ``*.py`` in each) into the runtime package.
RUNTIME_SUBPACKAGES = ("predictive", "data")

_RUNTIME_INIT = '''"""bayesirt's numpy-only runtime, copied from bayesirt {version}.

predictive/, data/, errors.py and features.py are byte-for-byte copies of
bayesirt/predictive/, bayesirt/data/, bayesirt/errors.py and bayesirt/features.py
(sha256 in ../manifest.json); they import each
other relatively. glue.py turns the platform's calls into calls of predictive. They need
numpy, scipy and pandas only.
"""

__version__ = "{version}"
'''


@dataclass(frozen=True)
class BundleInfo:
    """What ``build_bundle`` wrote.

    Attributes
    ----------
    path : Path
        The ZIP file.
    size_bytes : int
        Its size on disk.
    n_draws : int
        Posterior draws kept in the artifact.
    artifact_bytes : int
        Uncompressed size of ``posterior_flat.nc``.
    manifest : dict
        The manifest written into the ZIP.
    """

    path: Path
    size_bytes: int
    n_draws: int
    artifact_bytes: int
    manifest: dict

    def __str__(self) -> str:
        m = self.manifest
        return (
            f"{self.path}: {self.size_bytes / 1e6:.1f} MB ZIP (posterior artifact "
            f"{self.artifact_bytes / 1e6:.1f} MB uncompressed), model {m.get('model_name')}, "
            f"{self.n_draws} draws, acquisition {m.get('acquisition')}; check it with "
            f"`bayesirt evaluate {self.path.name} DATA_DIR"
            + (" --protocol streaming`" if m.get("protocol") == "streaming" else "`")
        )


def _package_bytes(name: str) -> bytes:
    """Read a module of the installed package (works for editable and wheel installs)."""
    res = resources.files("bayesirt").joinpath(*name.split("/"))
    if not res.is_file():
        raise FileNotFoundError(
            f"bayesirt/{name} is missing from the installed package; the bundle needs it "
            "verbatim (reinstall bayesirt)"
        )
    return res.read_bytes()


def _runtime_files(protocol: str = "batch") -> dict[str, bytes]:
    """Every runtime file by its path inside ``bayesirt_runtime/``, read from the package.

    Returns
    -------
    dict of str to bytes
        ``<package>/<module>.py`` for each module of the packages of
        :data:`RUNTIME_SUBPACKAGES` (sorted; ``data/`` in batch bundles only), then
        :data:`RUNTIME_MODULES`.

    Raises
    ------
    FileNotFoundError
        If a module, or a whole package, is missing from the install.
    """
    out: dict[str, bytes] = {}
    for sub in RUNTIME_SUBPACKAGES:
        if protocol != "batch" and sub in _STREAM_EXCLUDED:
            continue
        pkg = resources.files("bayesirt").joinpath(sub)
        names: list[str] = []
        if pkg.is_dir():
            names = sorted(r.name for r in pkg.iterdir()
                           if r.is_file() and r.name.endswith(".py"))
        if "__init__.py" not in names:
            raise FileNotFoundError(
                f"bayesirt/{sub}/ is missing from the installed package; the bundle needs it "
                "verbatim (reinstall bayesirt)"
            )
        out.update({f"{sub}/{n}": _package_bytes(f"{sub}/{n}") for n in names})
    out.update({name: _package_bytes(name) for name in RUNTIME_MODULES})
    return out


def _template_bytes(name: str) -> bytes:
    res = resources.files("bayesirt.submission").joinpath("templates", name)
    if not res.is_file():
        raise FileNotFoundError(f"template {name} is missing from bayesirt.submission/templates")
    return res.read_bytes()


def _flat_facts(path: Path) -> dict:
    """Global attributes and draw count of a flat artifact, read the way the runtime reads it."""
    from scipy.io import netcdf_file

    def _s(v) -> str:
        return v.decode("utf-8") if isinstance(v, bytes) else str(v)

    nc = netcdf_file(path, mode="r", mmap=False)
    try:
        # scipy exposes the file's global attributes as instance attributes.
        facts = {
            "schema": int(getattr(nc, "bayesirt_flat_schema", -1)),
            "model_name": _s(getattr(nc, "model_name", b"")),
            "config": _s(getattr(nc, "config", b"{}")),
            "fingerprint": _s(getattr(nc, "fingerprint", b"")),
            "n_draws": int(nc.dimensions.get("sample") or 0),
            "variables": sorted(nc.variables),
        }
    finally:
        nc.close()
    return facts


def _auto_draws(tree) -> int:
    """Draws to keep for ``max_draws="auto"``: the predictive default, capped by size."""
    from bayesirt.posteriors import FLAT_VARIABLES

    post = tree["posterior"]
    per_draw = 0
    for name in FLAT_VARIABLES:
        if name in post.data_vars:
            shape = post[name].shape
            per_draw += 4 * int(np.prod(shape[2:], dtype=np.int64))  # float32 in the file
    cap = max(1, AUTO_TARGET_BYTES // max(per_draw, 1))
    return int(min(DEFAULT_MAX_DRAWS, cap))


#: Arguments of predict_pairs / score_pairs that the glue fills in itself.
_RESERVED = frozenset({"draws", "model_ids", "item_ids", "new_items", "new_models", "labels",
                       "evidence", "progress", "method"})


def _check_options(options, func_name: str) -> dict:
    """Validate keyword options for ``predictive.<func_name>`` (stored in the manifest).

    ``neighbours`` is a bool here: True makes the glue pass the training items' ids and
    embeddings from train_dir (the neighbour difficulty prior).
    """
    from bayesirt import predictive

    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"{func_name} options must be a dict, got {type(options).__name__}")
    params = inspect.signature(getattr(predictive, func_name)).parameters
    allowed = sorted(set(params) - _RESERVED)
    out = {}
    for key, value in options.items():
        if key not in allowed:
            raise InputError(f"unknown {func_name} option {key!r}; allowed: {allowed}")
        if key == "neighbours" and not isinstance(value, bool):
            raise InputError(f"{func_name} option 'neighbours' must be true/false, got {value!r}")
        try:
            json.dumps(value)
        except TypeError:
            raise InputError(
                f"{func_name} option {key!r}={value!r} is not JSON-serialisable"
            ) from None
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _from_flat(path: Path, max_draws, dest: Path) -> tuple[Path, int | None]:
    """Bundle an existing flat artifact: copied as is, or thinned through predictive."""
    import shutil

    from bayesirt import predictive
    from bayesirt.posteriors import FLAT_VARIABLES

    draws = predictive.load_flat(path)  # validates the schema
    keep = max_draws
    if max_draws == "auto":
        per_draw = sum(
            4 * int(np.prod(getattr(draws, n).shape[1:], dtype=np.int64))
            for n in FLAT_VARIABLES
            if getattr(draws, n, None) is not None
        )
        keep = int(min(DEFAULT_MAX_DRAWS, max(1, AUTO_TARGET_BYTES // max(per_draw, 1))))
    if keep is None or keep >= draws.n_draws:
        shutil.copyfile(path, dest)
    else:
        predictive.save_flat(draws.thin(keep), dest)
    return dest, keep


def _sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def build_bundle(
    posterior_path: str | Path,
    out_zip: str | Path,
    *,
    max_draws: int | str | None = "auto",
    acquisition: str | None = None,
    predict_options: dict | None = None,
    score_options: dict | None = None,
    protocol: str = "batch",
) -> BundleInfo:
    """Write the submission ZIP for a fitted posterior.

    Parameters
    ----------
    posterior_path : str or Path
        A posterior saved by ``bayesirt.posteriors.save`` (the NetCDF DataTree; its draws
        are written with ``predictive.save_flat``), or an existing flat artifact (NetCDF3,
        ``predictive.save_flat``), copied as is or thinned.
    out_zip : str or Path
        Destination ZIP (overwritten atomically; parent folders are created).
    max_draws : int, "auto" or None, optional
        ``"auto"`` (default): :data:`DEFAULT_MAX_DRAWS`, lowered when needed so that the
        artifact stays under :data:`AUTO_TARGET_BYTES` (about 800 draws for real-multibench).
        Keep at most this many flattened draws (evenly spaced); None keeps all. Prediction
        time and ZIP size grow linearly with it.
    acquisition : str, optional
        Batch: the method ``labeling.score_pairs`` passes to ``predictive.score_pairs``
        (``"bald"``, default, or ``"epig"``). Streaming: the hook's policy, ``"random"``
        (default: the platform's own rule) or ``"bald"``.
    predict_options, score_options : dict, optional
        Extra keyword arguments of ``predictive.predict_pairs`` / ``predictive.score_pairs``
        (e.g. ``{"item_draws": 64}``), stored in the manifest and applied in the sandbox;
        ``{"neighbours": True}`` switches on the neighbour difficulty prior built from
        train_dir's item embeddings. Default: predictive's own defaults, which is what
        ``bayesirt predict`` uses. Batch only.
    protocol : {"batch", "streaming"}, optional
        ``"batch"``: the seed's ``train`` / ``predict(train_dir, test_dir, labeled_pairs)`` /
        ``score_pairs``. ``"streaming"``: ``predict(input, labeled) -> float`` and
        ``acquisition_function(input, labeled, context) -> bool``
        (``../shared/docs/streaming.md``), numpy + scipy only.

    Returns
    -------
    BundleInfo

    Raises
    ------
    FileNotFoundError
        If the posterior, a template or a runtime module is missing.
    ValueError
        If ``acquisition`` is unknown, ``max_draws`` is not a positive int, an option is not
        an argument of predictive's function, or the posterior cannot be flattened (see
        ``bayesirt.posteriors.flat_arrays``).
    TypeError
        If an options argument is not a dict.
    """
    from bayesirt import predictive
    from bayesirt.posteriors import flat_arrays, load, posterior_attrs

    if protocol not in PROTOCOLS:
        raise InputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    allowed = ACQUISITIONS if protocol == "batch" else STREAM_ACQUISITIONS
    if acquisition is None:
        acquisition = allowed[0]
    if acquisition not in allowed:
        raise InputError(f"acquisition for the {protocol} protocol must be one of {allowed}, "
                         f"got {acquisition!r}")
    p_opts = _check_options(predict_options, "predict_pairs")
    s_opts = _check_options(score_options, "score_pairs")
    if max_draws is not None and max_draws != "auto" and (
        not isinstance(max_draws, int) or isinstance(max_draws, bool) or max_draws < 1
    ):
        raise InputError(f"max_draws must be a positive int, 'auto' or None, got {max_draws!r}")
    posterior_path = Path(posterior_path)
    if not posterior_path.is_file():
        raise FileNotFoundError(f"posterior file not found: {posterior_path}")
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)

    runtime = _runtime_files(protocol)
    if protocol == "batch":
        templates = {name: _template_bytes(name) for name in ("model.py", "labeling.py")}
        glue_name, glue = "glue.py", _template_bytes("glue.py")
    else:
        templates = {"model.py": _template_bytes("stream_model.py"),
                     "labeling.py": _template_bytes("stream_labeling.py")}
        glue_name, glue = "stream_glue.py", _template_bytes("stream_glue.py")
    init = _RUNTIME_INIT.format(version=bayesirt.__version__).encode("utf-8")

    with tempfile.TemporaryDirectory(prefix="bayesirt-bundle-", dir=out_zip.parent) as tmp_s:
        tmp = Path(tmp_s)
        with open(posterior_path, "rb") as fh:
            is_flat = fh.read(3) == b"CDF"
        if is_flat:
            attrs: dict = {}
            flat, keep = _from_flat(posterior_path, max_draws, tmp / ARTIFACT_NAME)
        else:
            tree = load(posterior_path)
            try:
                attrs = posterior_attrs(tree)
                keep = _auto_draws(tree) if max_draws == "auto" else max_draws
                draws = predictive.PosteriorDraws.from_arrays(**flat_arrays(tree, max_draws=keep))
            finally:
                tree.close()
            flat = tmp / ARTIFACT_NAME
            predictive.save_flat(draws, flat)
        facts = _flat_facts(flat)
        if not facts["fingerprint"]:
            # Fits record the data hash in provenance as "data_fingerprint"; the flat file's
            # attribute may be blank when the posterior writer looked under another key.
            facts["fingerprint"] = str(attrs.get("provenance", {}).get("data_fingerprint", ""))
        try:
            config = json.loads(facts["config"])
        except json.JSONDecodeError:
            config = facts["config"]
        artifact = flat.read_bytes()
        manifest = {
            "format": "bayesirt-submission",
            "format_version": 1,
            "bayesirt_version": bayesirt.__version__,
            "model_name": facts["model_name"],
            "config": config,
            "fingerprint": facts["fingerprint"],
            "n_draws": facts["n_draws"],
            "max_draws": keep,
            "max_draws_requested": max_draws,
            "protocol": protocol,
            "acquisition": acquisition,
            "predict_options": p_opts,
            "score_options": s_opts,
            "artifact": ARTIFACT_NAME,
            "flat_schema": facts["schema"],
            "posterior_variables": facts["variables"],
            "source_posterior": posterior_path.name,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "requires": ("python>=3.10; numpy, scipy, pandas" if protocol == "batch" else
                         "python>=3.10; numpy, scipy"),
            "sha256": {
                ARTIFACT_NAME: _sha256(artifact),
                **{f"{RUNTIME_PACKAGE}/{n}": _sha256(b) for n, b in runtime.items()},
                f"{RUNTIME_PACKAGE}/{glue_name}": _sha256(glue),
                **{n: _sha256(b) for n, b in templates.items()},
            },
        }
        part = tmp / (out_zip.name + ".part")
        with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for name, b in templates.items():
                zf.writestr(name, b)
            zf.writestr(f"{RUNTIME_PACKAGE}/__init__.py", init)
            for name, b in runtime.items():
                zf.writestr(f"{RUNTIME_PACKAGE}/{name}", b)
            zf.writestr(f"{RUNTIME_PACKAGE}/{glue_name}", glue)
            zf.write(flat, ARTIFACT_NAME)
            zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True))
        part.replace(out_zip)
    return BundleInfo(
        path=out_zip,
        size_bytes=out_zip.stat().st_size,
        n_draws=facts["n_draws"],
        artifact_bytes=len(artifact),
        manifest=manifest,
    )
