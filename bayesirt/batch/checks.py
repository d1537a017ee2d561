"""Validation helpers of batch plans: value checks, and line numbers found in the text.

``tomllib`` reports no line numbers for values it parsed fine, so :class:`Lines` scans the
plan's text for ``key =`` under each table header; :class:`Checker` turns a problem into an
:class:`bayesirt.errors.InputError` reading ``PLAN:LINE: message``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bayesirt.errors import InputError

#: Fit settings a plan may set: key -> accepted Python type (after TOML parsing).
FIT_KEYS: dict[str, type] = {
    "model": str, "seed": int, "chains": int, "warmup": int, "draws": int,
    "max_tree_depth": int, "target_accept": float, "guess": bool,
    "contamination": bool, "outliers": bool, "mass_matrix": str,
    "embedding_components": int, "parameterisation": str, "init": str, "init_steps": int,
    "log_likelihood": bool,
}
_INT_MIN = {"seed": 0, "chains": 1, "warmup": 0, "draws": 1, "max_tree_depth": 1,
            "embedding_components": 0, "init_steps": 1}


def _choices(key: str) -> tuple[str, ...] | None:
    if key == "model":
        from bayesirt.models import MODELS

        return tuple(sorted(MODELS))
    if key == "parameterisation":
        from bayesirt.models.inputs import PARAMETERISATIONS

        return tuple(PARAMETERISATIONS)
    if key == "init":
        return ("advi", "median")
    return None



class Lines:
    """Line numbers of keys and table headers, found by scanning the plan's text."""

    _ARRAY = re.compile(r"\[\[\s*([A-Za-z0-9_.\"'-]+)\s*\]\]")
    _TABLE = re.compile(r"\[\s*([A-Za-z0-9_.\"'-]+)\s*\]")
    _KEY = re.compile(r"""(["']?)([A-Za-z0-9_-]+)\1\s*=""")

    def __init__(self, text: str) -> None:
        self.entries: list[tuple[int, str | None, int | None, str | None]] = []
        table: str | None = None
        index: int | None = None
        counts: dict[str, int] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if m := self._ARRAY.match(line):
                table = m[1].strip("\"'")
                index = counts[table] = counts.get(table, -1) + 1
                self.entries.append((number, table, index, None))
            elif m := self._TABLE.match(line):
                table, index = m[1].strip("\"'"), None
                self.entries.append((number, table, index, None))
            elif m := self._KEY.match(line):
                self.entries.append((number, table, index, m[2]))

    def find(self, key: str | None, table: str | None = None,
             index: int | None = None) -> int | None:
        """Line of ``key`` in ``table`` (its ``index``-th copy), else anywhere, else None."""
        for number, t, i, k in self.entries:
            if k == key and t == table and (index is None or i == index):
                return number
        for number, t, _, k in self.entries:  # a table's own header: ``[key]``
            if table is None and k is None and t == key:
                return number
        for number, _, _, k in self.entries:
            if key is not None and k == key:
                return number
        return None


class Checker:
    """Raise one-line errors that name the plan file, the line and the key."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = Lines(text)

    def fail(self, message: str, key: str | None = None, table: str | None = None,
             index: int | None = None) -> InputError:
        """Return (for the caller to raise) an InputError naming the file and the line."""
        line = self.lines.find(key, table, index)
        place = f"{self.path}:{line}" if line else f"{self.path}"
        return InputError(f"{place}: {message}")

    def value(self, key: str, value: Any, table: str | None, index: int | None) -> Any:
        """Check one scalar fit setting; return it normalised (ints for floats as needed)."""
        kind = FIT_KEYS[key]
        name = where(table, index)
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.fail(f"{key} in {name} must be {kind_name(kind)}, got {value!r}",
                            key, table, index)
        choices = _choices(key)
        if choices is not None and value not in choices:
            raise self.fail(f"unknown {key} {value!r} in {name} (known: "
                            f"{', '.join(choices)})", key, table, index)
        if key in _INT_MIN and value < _INT_MIN[key]:
            raise self.fail(f"{key} in {name} must be >= {_INT_MIN[key]}, got {value!r}",
                            key, table, index)
        if key == "target_accept" and not 0.0 < value < 1.0:
            raise self.fail(f"target_accept in {name} must be in (0, 1), got {value!r}",
                            key, table, index)
        return value


def where(table: str | None, index: int | None) -> str:
    """Name a table for messages: ``[grid]``, ``[[fit]] #2``, ``the plan``."""
    if table is None:
        return "the plan"
    return f"[[{table}]] #{index + 1}" if index is not None else f"[{table}]"


def kind_name(kind: type) -> str:
    """Say what a value of ``kind`` looks like: ``an integer``."""
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}[kind]


def table_settings(check: Checker, table: dict[str, Any], name: str, index: int | None,
                   *, lists: bool) -> dict[str, list[Any]]:
    """Validate one table of fit settings; every value becomes a list of choices."""
    out: dict[str, list[Any]] = {}
    for key, raw in table.items():
        if key not in FIT_KEYS and key != "data":
            known = ", ".join(["data", *FIT_KEYS])
            raise check.fail(f"unknown key {key!r} in {where(name, index)} (known: {known})",
                             key, name, index)
        values = raw if isinstance(raw, list) else [raw]
        if isinstance(raw, list) and not lists:
            raise check.fail(f"{key} in {where(name, index)} is a list; lists of values "
                             "belong in [grid] or a [[fit]] table", key, name, index)
        if not values:
            raise check.fail(f"{key} in {where(name, index)} is an empty list", key, name,
                             index)
        if key == "data":
            for v in values:
                if not isinstance(v, str):
                    raise check.fail(f"data in {where(name, index)} must be a path string, "
                                     f"got {v!r}", key, name, index)
            out[key] = list(values)
        else:
            out[key] = [check.value(key, v, name, index) for v in values]
    return out
