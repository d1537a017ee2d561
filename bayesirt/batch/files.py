"""The files of a batch's output folder, written atomically, and when a fit counts as done.

``OUT/<name>/posterior.nc`` + ``summary.json`` hold a finished fit, ``failed.json`` a failed
one, ``OUT/batch.json`` the records of the last run. JSON is strict (NaN and inf become
null) and replaced atomically, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"
FAILED = "failed.json"
POSTERIOR = "posterior.nc"
BATCH = "batch.json"


def jsonable(obj: Any) -> Any:
    """Return ``obj`` with numpy scalars as Python numbers and NaN/inf as None (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON atomically (a crash leaves the old file or none, never half)."""
    from bayesirt.posteriors.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")
    return Path(path)


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """Read a JSON object; None when the file is missing or not a readable JSON object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def is_done(folder: Path, spec: Any) -> bool:
    """Whether ``folder`` holds a finished fit with ``spec``'s settings fingerprint."""
    summary = read_json(folder / SUMMARY)
    return (summary is not None and summary.get("status") == "ok"
            and summary.get("settings_fingerprint") == spec.settings_fingerprint
            and (folder / POSTERIOR).is_file())
