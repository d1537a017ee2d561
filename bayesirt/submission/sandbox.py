"""Isolation for the child process that runs a submission's code (bubblewrap).

``bayesirt evaluate`` runs somebody's ``model.py``; with no isolation that code has the user's
full rights. Where bubblewrap (``bwrap``) works, :meth:`Sandbox.command` wraps the child's
command line so that it sees:

- the system read-only (``--ro-bind / /``), device nodes off, a fresh ``/dev`` and ``/proc``;
- :data:`HIDDEN` (``/tmp``, ``/var/tmp``, ``/run``, ``/home``, ``/root`` and ``$HOME``)
  replaced by empty tmpfs, so other users' temp files, sockets (``/run/*.sock``) and home
  folders are out of sight; the paths the run needs (the submission, the data, the
  interpreter) are bound back read-only at the same place;
- exactly two writable places: the output folder the harness reads back and the fresh
  ``/tmp`` (``HOME`` and ``TMPDIR`` point there), both gone with the sandbox;
- no network (``--unshare-net``: an own loopback, nothing else), own PID, IPC and UTS
  namespaces, no capabilities even when the user is root (``--cap-drop ALL``), a new terminal
  session, and death with the parent (the time limit kills everything);
- only the environment variables the harness sets (``--clearenv``).

User namespaces can be disabled (a sysctl, some containers), so :func:`probe_bwrap` runs the
same skeleton once per process on ``true`` before anything relies on it. :func:`select` turns
the ``sandbox`` option (``"auto"``, ``"require"`` or ``"off"``) into a :class:`Sandbox`.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bayesirt.errors import InputError

__all__ = [
    "HIDDEN",
    "MODES",
    "Sandbox",
    "SandboxUnavailableError",
    "interpreter_paths",
    "probe_bwrap",
    "select",
]

#: Values of the ``sandbox`` option: ``auto`` uses bubblewrap when it works and says loudly
#: when it does not; ``require`` refuses to run without it; ``off`` never uses it.
MODES = ("auto", "require", "off")
#: Folders covered by an empty tmpfs inside the sandbox (``$HOME`` is added at run time).
HIDDEN = ("/tmp", "/var/tmp", "/run", "/home", "/root")
#: The sandbox's fresh writable temp folder (``HOME`` and ``TMPDIR`` of the child).
SANDBOX_TMP = "/tmp"
_PROBE_TIMEOUT = 20.0


class SandboxUnavailableError(InputError):
    """``sandbox="require"`` was asked for but bubblewrap is missing or does not work."""


def _namespace_flags() -> list[str]:
    flags = [
        "--die-with-parent", "--new-session",
        "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    # bwrap started by root keeps every capability unless told otherwise, and with
    # CAP_SYS_ADMIN the child could remount the read-only binds writable. An unprivileged
    # bwrap drops them by itself (a setuid one even refuses --cap-drop from non-root).
    if os.geteuid() == 0:
        flags += ["--cap-drop", "ALL"]
    return flags


def _hidden_dirs() -> tuple[str, ...]:
    """Existing real folders of :data:`HIDDEN` plus ``$HOME``, none inside another."""
    cand = list(HIDDEN)
    home = os.environ.get("HOME", "")
    if home and os.path.isabs(home):
        cand.append(os.path.normpath(home))
    out: list[str] = []
    for d in sorted(set(cand)):
        # A symlink (/var/run -> /run) is covered through its target; "/" is never hidden.
        if d == "/" or os.path.islink(d) or not os.path.isdir(d):
            continue
        if not any(_is_under(d, h) for h in out):
            out.append(d)
    return tuple(out)


def _is_under(path: str, root: str) -> bool:
    """Tell whether ``path`` is ``root`` or lies below it (both absolute and normalised)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def _skeleton(hidden: Sequence[str]) -> list[str]:
    args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for d in hidden:
        args += ["--tmpfs", d]
    return args


@functools.lru_cache(maxsize=8)
def probe_bwrap(bwrap: str) -> tuple[bool, str]:
    """Check once per process that ``bwrap`` can build the sandbox on this machine.

    Runs ``bwrap --version`` and then the very namespace and mount skeleton of
    :meth:`Sandbox.command` on ``true``: user namespaces may be disabled, or a container may
    forbid a new ``/proc``, and then bwrap exists but fails.

    Parameters
    ----------
    bwrap : str
        Path of the bwrap executable.

    Returns
    -------
    ok : bool
        Whether the probe ran and exited 0.
    detail : str
        The version (``"bubblewrap 0.8.0"``) when ``ok``, else why it failed (bwrap's own
        message).
    """
    true = shutil.which("true") or "/bin/true"
    try:
        ver = subprocess.run([bwrap, "--version"], capture_output=True, text=True,
                             timeout=_PROBE_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
        run = subprocess.run(
            [bwrap, *_namespace_flags(), *_skeleton(_hidden_dirs()), "--clearenv", "--", true],
            capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{bwrap} could not be run: {exc}"
    if run.returncode != 0:
        msg = (run.stderr or run.stdout).strip().splitlines()
        return False, (f"{bwrap} cannot create a sandbox here (exit {run.returncode}: "
                       f"{msg[-1] if msg else 'no message'}); user namespaces may be disabled")
    version = ver.stdout.strip() or "bubblewrap (version unknown)"
    return True, version


@dataclass(frozen=True)
class Sandbox:
    """How the submission's child process is confined.

    Attributes
    ----------
    kind : {"bwrap", "none"}
        ``"bwrap"``: under bubblewrap; ``"none"``: a plain child process with the user's rights.
    mode : {"auto", "require", "off"}
        The option it was selected with.
    bwrap : str or None
        Path of the bwrap executable (``kind == "bwrap"`` only).
    detail : str
        The bubblewrap version, or why there is no sandbox.
    """

    kind: str
    mode: str
    bwrap: str | None = None
    detail: str = ""

    @property
    def isolated(self) -> bool:
        """Whether the child runs confined."""
        return self.kind == "bwrap"

    @property
    def tmp_dir(self) -> str | None:
        """Path of the child's fresh writable temp folder inside the sandbox (None: no sandbox)."""
        return SANDBOX_TMP if self.isolated else None

    def describe(self) -> str:
        """One line for reports: what confined the child, or that nothing did and why."""
        if self.isolated:
            return (f"bwrap ({self.detail}): read-only system, {', '.join(_hidden_dirs())} "
                    "hidden, writable only the output folder and a fresh /tmp, no network, "
                    "own PID namespace, no capabilities")
        return f"NONE ({self.detail}): the submission ran with your full rights"

    def warning_line(self) -> str:
        """Return the line printed when a submission is about to run WITHOUT isolation."""
        line = ("bayesirt evaluate: the submission runs WITHOUT isolation "
                f"(sandbox {self.mode}: {self.detail}); its code can read, write and connect "
                "wherever you can.")
        if self.mode != "off":
            line += (" Install bubblewrap (apt-get install bubblewrap) for a sandbox, or use "
                     "sandbox 'require' to refuse such runs.")
        return line

    def command(
        self,
        argv: Sequence[str],
        *,
        cwd: str | Path,
        env: Mapping[str, str],
        read_only: Iterable[str | Path] = (),
        writable: Iterable[str | Path] = (),
    ) -> list[str]:
        """Build the command line that runs ``argv`` confined (``argv`` itself if no sandbox).

        Parameters
        ----------
        argv : sequence of str
            The child's command (absolute executable path first).
        cwd : str or Path
            Working folder of the child inside the sandbox (it must be visible there: in
            ``read_only``, ``writable``, or outside :data:`HIDDEN`).
        env : mapping of str to str
            The child's complete environment (``--clearenv`` then ``--setenv`` each).
        read_only : iterable of str or Path
            Paths the child reads. Those under a hidden folder are bound back read-only at the
            same path; missing ones are skipped (e.g. an interpreter's absent ``python3X.zip``).
        writable : iterable of str or Path
            Existing paths the child writes (bound read-write, after the read-only binds).

        Returns
        -------
        list of str
            For ``kind == "none"``, ``list(argv)``: the caller passes ``cwd`` and ``env`` to
            :func:`subprocess.run` itself (it does for bwrap too: harmless, and bwrap then
            runs in the clean environment as well).

        Raises
        ------
        FileNotFoundError
            If a ``writable`` path does not exist.
        """
        if not self.isolated:
            return list(argv)
        hidden = _hidden_dirs()
        binds: list[str] = []
        for p in sorted({os.path.abspath(os.fspath(p)) for p in read_only}):
            # Bind only what a tmpfs hides, and only strictly below it: binding /tmp itself
            # back would undo the fresh /tmp. Inside an already bound path: covered.
            if not os.path.exists(p) or not any(_is_under(p, h) and p != h for h in hidden):
                continue
            if not any(_is_under(p, b) for b in binds):
                binds.append(p)
        args = [self.bwrap or "bwrap", *_namespace_flags(), *_skeleton(hidden)]
        for p in binds:
            args += ["--ro-bind", p, p]
        for w in writable:
            w = os.path.abspath(os.fspath(w))
            if not os.path.exists(w):
                raise FileNotFoundError(f"sandbox: writable path {w} does not exist")
            args += ["--bind", w, w]
        args += ["--chdir", os.path.abspath(os.fspath(cwd)), "--clearenv"]
        for k, v in env.items():
            args += ["--setenv", k, v]
        return [*args, "--", *argv]


def select(mode: str = "auto", *, bwrap: str | None = None) -> Sandbox:
    """Turn the ``sandbox`` option into a :class:`Sandbox`, probing bubblewrap when asked.

    Parameters
    ----------
    mode : {"auto", "require", "off"}, optional
        ``auto``: bubblewrap if its probe passes, else no sandbox (the caller prints
        :meth:`Sandbox.warning_line`); ``require``: bubblewrap or an error; ``off``: none.
    bwrap : str, optional
        The bwrap executable (default: ``bwrap`` on ``PATH``).

    Returns
    -------
    Sandbox

    Raises
    ------
    InputError
        If ``mode`` is not one of :data:`MODES` (a ``ValueError``).
    SandboxUnavailableError
        If ``mode == "require"`` and bwrap is missing or its probe fails (an ``InputError``).
    """
    if mode not in MODES:
        raise InputError(f"sandbox must be one of {MODES}, got {mode!r}")
    if mode == "off":
        return Sandbox("none", mode, detail="turned off by the user")
    exe = shutil.which(bwrap or "bwrap")
    if exe is None:
        detail = (f"bwrap not found: {bwrap}" if bwrap else
                  "bwrap not found on PATH (Debian/Ubuntu package: bubblewrap)")
        ok = False
    else:
        ok, detail = probe_bwrap(exe)
    if ok:
        return Sandbox("bwrap", mode, bwrap=exe, detail=detail)
    if mode == "require":
        raise SandboxUnavailableError(
            f"sandbox 'require': {detail}; install bubblewrap (apt-get install bubblewrap), "
            "enable user namespaces, or evaluate only code you trust with sandbox 'off'"
        )
    return Sandbox("none", mode, detail=detail)


_QUERY = ("import json, sys; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix, "
          "sys.exec_prefix, sys.base_exec_prefix, *sys.path]))")


def interpreter_paths(python: str, env: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """Ask an interpreter (outside the sandbox) which paths it needs to start and import.

    Parameters
    ----------
    python : str
        The interpreter, as the harness would call it.
    env : mapping of str to str, optional
        Environment to ask it in (the child's; ``-I`` ignores ``PYTHON*`` anyway).

    Returns
    -------
    executable : str
        ``sys.executable``: the path to run inside the sandbox (a venv's ``bin/python``
        stays as it is, so the venv is still found; a pyenv shim becomes the real binary).
    paths : list of str
        The executable and its resolved target, ``sys.prefix``/``base_prefix``/exec prefixes
        and every absolute ``sys.path`` entry (with ``-I``, as the child starts).

    Raises
    ------
    InputError
        If the interpreter does not run.
    """
    try:
        proc = subprocess.run([python, "-I", "-c", _QUERY], capture_output=True, text=True,
                              timeout=120, check=False, env=dict(env) if env else None,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"python interpreter {python} does not run: {exc}") from None
    if proc.returncode != 0:
        raise InputError(f"python interpreter {python} does not run (exit {proc.returncode}): "
                         f"{proc.stderr.strip()[-500:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    exe = found[0] or python
    paths = [p for p in found if isinstance(p, str) and os.path.isabs(p)]
    paths.append(os.path.realpath(exe))
    return exe, paths
