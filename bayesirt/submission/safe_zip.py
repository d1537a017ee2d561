"""Extract a submission ZIP without trusting it.

A submission is code plus an artifact from somebody's disk; the harness unpacks it before
running it, so the archive itself must not be able to write outside the destination folder
(``../`` entries, absolute paths, symlinks) or fill the disk (a "zip bomb" whose entries
expand far past their declared size). Every entry is checked before anything is written.
"""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path, PurePosixPath

#: Default bound on the total uncompressed size of a submission (the platform's own limit is
#: unknown; a real-multibench bundle is well under 200 MB).
DEFAULT_MAX_BYTES = 2 * 1024**3

_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeArchiveError(ValueError):
    """A ZIP entry would escape the destination, is a link, or the archive is too large."""


def _check_name(name: str, zip_path: Path) -> PurePosixPath:
    """Return the entry's relative path, or raise if it could land outside the destination."""
    # ZIP names use "/" by the spec, but archives made on Windows sometimes hold "\\".
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix):
        raise UnsafeArchiveError(
            f"{zip_path}: entry {name!r} is an absolute path; a submission ZIP must hold "
            "relative paths only (rebuild it with `bayesirt bundle`)"
        )
    parts = PurePosixPath(posix).parts
    if any(part == ".." for part in parts):
        raise UnsafeArchiveError(
            f"{zip_path}: entry {name!r} contains '..' and would be written outside the "
            "extraction folder; refusing to extract"
        )
    parts = tuple(p for p in parts if p != ".")
    if not parts:
        raise UnsafeArchiveError(f"{zip_path}: entry {name!r} has an empty name; refusing")
    return PurePosixPath(*parts)


def _is_link(info: zipfile.ZipInfo) -> bool:
    """Whether the entry is a symbolic link (Unix mode bits in the high word of external_attr)."""
    mode = (info.external_attr >> 16) & 0xFFFF
    return stat.S_ISLNK(mode)


def safe_extract(
    zip_path: str | Path, dest: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> Path:
    """Extract ``zip_path`` into ``dest`` after checking every entry.

    Parameters
    ----------
    zip_path : str or Path
        The archive to extract.
    dest : str or Path
        Destination folder; created (once all checks passed) if missing. Nothing is written
        outside it.
    max_bytes : int, optional
        Upper bound on the total uncompressed size. Both the sizes declared in the archive's
        directory and the bytes actually inflated are held to it, so an archive that lies
        about its sizes is stopped while it expands.

    Returns
    -------
    Path
        The resolved destination folder.

    Raises
    ------
    FileNotFoundError
        If ``zip_path`` does not exist.
    UnsafeArchiveError
        (a ``ValueError``) if the file is not a ZIP, an entry is an absolute path, contains
        ``..``, is a symbolic link, or the archive expands past ``max_bytes``. The checks on
        names, links and declared sizes run before anything is written.
    TypeError
        If ``max_bytes`` is not a positive int.
    """
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes <= 0:
        raise TypeError(f"max_bytes must be a positive int, got {max_bytes!r}")
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise FileNotFoundError(f"submission ZIP not found: {zip_path}")
    if not zipfile.is_zipfile(zip_path):
        raise UnsafeArchiveError(f"{zip_path} is not a ZIP archive")
    dest = Path(dest)
    root = dest.resolve()

    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        plan: list[tuple[zipfile.ZipInfo, Path]] = []
        declared = 0
        for info in infos:
            rel = _check_name(info.filename, zip_path)
            if _is_link(info):
                raise UnsafeArchiveError(
                    f"{zip_path}: entry {info.filename!r} is a symbolic link; links are "
                    "refused (they can point outside the extraction folder)"
                )
            target = (root / rel).resolve()
            # Belt and braces: resolve() also catches a name that escapes some other way.
            if target != root and root not in target.parents:
                raise UnsafeArchiveError(
                    f"{zip_path}: entry {info.filename!r} resolves outside {root}; refusing"
                )
            declared += info.file_size
            if declared > max_bytes:
                raise UnsafeArchiveError(
                    f"{zip_path}: archive expands to more than {max_bytes:,} bytes "
                    f"(declared sizes); refusing to extract"
                )
            plan.append((info, target))

        # Only now, with every entry checked, does anything touch the disk.
        root.mkdir(parents=True, exist_ok=True)
        written = 0
        for info, target in plan:
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while True:
                    chunk = src.read(_CHUNK)
                    if not chunk:
                        break
                    written += len(chunk)
                    if written > max_bytes:
                        out.close()
                        target.unlink()
                        raise UnsafeArchiveError(
                            f"{zip_path}: archive inflated past {max_bytes:,} bytes while "
                            f"extracting {info.filename!r} (sizes in the archive are wrong); "
                            "refusing"
                        )
                    out.write(chunk)
    return root
