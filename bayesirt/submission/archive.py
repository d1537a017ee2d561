"""The organisers' archive checks of a streaming submission ZIP (``streaming.md``).

``model.py`` at the root (not in a folder), no absolute or ``..`` paths, no ZIP inside the
ZIP, no ``subjects.txt``, at most one ``models.txt`` (at most 5 plain repository ids), and
every bundled file the code opens by a literal path present in the archive.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath

#: Most model ids ``models.txt`` may declare.
MAX_DECLARED_MODELS = 5
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# A string literal naming a data file the code would open from its own folder.
_LITERAL = re.compile(r"""['"]([\w./-]+\.(?:nc|json|txt|npy|npz|csv|pkl|pt|bin|safetensors))['"]""")


def archive_problems(zip_path: str | Path) -> list[str]:
    """Every way the ZIP fails the platform's archive checks (empty: it passes).

    Parameters
    ----------
    zip_path : path-like

    Returns
    -------
    list of str
        One line per problem, naming the entry.

    Raises
    ------
    FileNotFoundError
        If the ZIP does not exist.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise FileNotFoundError(f"submission ZIP not found: {zip_path}")
    problems = []
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        return [f"{zip_path}: not a ZIP archive"]
    with zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        if "model.py" not in names:
            inner = [n for n in names if PurePosixPath(n).name == "model.py"]
            where = f" (found {inner[0]!r}: move it to the root)" if inner else ""
            problems.append(f"{zip_path}: no model.py at the root of the archive{where}")
        for n in names:
            posix = n.replace("\\", "/")
            if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
                problems.append(f"{zip_path}: entry {n!r} is an absolute path")
            if ".." in PurePosixPath(posix).parts:
                problems.append(f"{zip_path}: entry {n!r} contains '..'")
            if posix.lower().endswith(".zip"):
                problems.append(f"{zip_path}: entry {n!r} is a ZIP inside the ZIP")
            if PurePosixPath(posix).name == "subjects.txt":
                problems.append(f"{zip_path}: entry {n!r}: subjects.txt is not allowed")
        declared = [n for n in names if PurePosixPath(n).name == "models.txt"]
        if len(declared) > 1:
            problems.append(f"{zip_path}: {len(declared)} models.txt files ({declared}); at "
                            "most one")
        for n in declared[:1]:
            ids = [x.strip() for x in zf.read(n).decode("utf-8", "replace").splitlines()
                   if x.strip() and not x.strip().startswith("#")]
            if len(ids) > MAX_DECLARED_MODELS:
                problems.append(f"{zip_path}: {n} declares {len(ids)} models; at most "
                                f"{MAX_DECLARED_MODELS}")
            bad = [x for x in ids if not _REPO_ID.match(x)]
            if bad:
                problems.append(f"{zip_path}: {n}: {bad[0]!r} is not a plain repository id")
        present = {PurePosixPath(n).name for n in names} | set(names)
        for n in names:
            if not n.endswith(".py"):
                continue
            text = zf.read(n).decode("utf-8", "replace")
            for lit in sorted(set(_LITERAL.findall(text))):
                if lit not in present and PurePosixPath(lit).name not in present:
                    problems.append(f"{zip_path}: {n} opens {lit!r}, which the archive lacks")
    return problems
