"""Output paths: checked before any work starts, so a long run never dies at its last step.

Every command that writes a file calls :func:`prepare_output` first. The rule is the same for
all of them: a missing parent folder is created; a folder given where a file is expected, a
file standing where a folder must be, a folder that cannot be written, or (when the size is
known) too little free disk space is an :class:`~bayesirt.errors.InputError` naming the path
and what is wrong.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bayesirt.errors import InputError

__all__ = ["describe_os_error", "prepare_output", "prepare_output_folder"]


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError``: the path first, then what is wrong.

    Parameters
    ----------
    exc : OSError

    Returns
    -------
    str
        e.g. ``"/data/x.csv: No such file or directory"``.
    """
    if exc.filename is not None and exc.strerror:
        where = str(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {exc.filename2}"
        return f"{where}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def _check_parents(path: Path) -> None:
    """Refuse when a non-folder stands where one of ``path``'s parent folders must be."""
    for ancestor in (path.parent, *path.parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InputError(f"{path}: cannot be created: {ancestor} is a file, not a folder")
            return


def _make_folder(folder: Path, path: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create folder {folder}: {exc.strerror or exc}") from None


def _probe_write(folder: Path, path: Path) -> None:
    """Create and delete a file in ``folder``.

    The only test of writability that root obeys too (read-only mounts, /proc, full
    disks), unlike ``os.access``.
    """
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".bayesirt-probe-"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot write in {folder}: {exc.strerror or exc}") from None


def _check_space(folder: Path, path: Path, expected_bytes: int) -> None:
    if expected_bytes <= 0:
        return
    free = shutil.disk_usage(folder).free
    if free < expected_bytes:
        raise InputError(
            f"{path}: needs about {expected_bytes / 1e6:,.0f} MB, only {free / 1e6:,.0f} MB "
            f"free in {folder}"
        )


def prepare_output(
    path: str | os.PathLike[str], *, what: str = "output file", expected_bytes: int = 0
) -> Path:
    """Check that ``path`` can be written as a file, creating its parent folder if missing.

    Parameters
    ----------
    path : str or path-like
        The file a command will write.
    what : str
        What the file is, for the message (``"posterior file"``, ``"report"``...).
    expected_bytes : int, default 0
        Rough size of the file; more than the free space of its folder is refused.
        0 skips the check.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If ``path`` is a folder, a parent is a file, the folder cannot be created or
        written, an existing file cannot be replaced, or the disk is too full.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the {what}'s file name (e.g. {path / 'x'})")
    _check_parents(path)
    folder = path.parent
    _make_folder(folder, path)
    _probe_write(folder, path)
    _check_space(folder, path, expected_bytes)
    return path


def prepare_output_folder(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """Check that ``path`` can be used (created if missing) as a folder to write into.

    Parameters
    ----------
    path : str or path-like
    what : str
        What the folder is, for the message.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        If ``path`` is a file, a parent is a file, or it cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: is a file; the {what} must be a folder")
    _check_parents(path / "x")
    _make_folder(path, path)
    _probe_write(path, path)
    return path
