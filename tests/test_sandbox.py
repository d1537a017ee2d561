"""The bubblewrap sandbox around a submission's child process: real bwrap, real escapes tried.

Each escape test evaluates a tiny submission that tries something it must not (write outside
its output folder, connect to a socket this test listens on, outlive the time limit) and
asserts on the host side that it did not happen. They skip, saying why, only where bwrap is
missing or cannot create a sandbox (user namespaces disabled).
"""

from __future__ import annotations

import json
import re
import shutil
import site
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

# pytest puts tests/ on sys.path (rootdir-style test modules, no package): reuse the stand-in
# submission and the ZIP helper of the submission tests instead of copying them.
from test_submission import DUMMY_LABELING, DUMMY_MODEL, dummy_zip, make_zip

from bayesirt.errors import InputError
from bayesirt.submission import SandboxUnavailableError, SubmissionError, evaluate
from bayesirt.submission.sandbox import probe_bwrap, select

FAST = {"budgets": (0,), "policy": "random", "time_limit": 120}


@pytest.fixture(scope="module")
def bwrap() -> str:
    """Path of a bwrap that works here; skip with the reason otherwise."""
    exe = shutil.which("bwrap")
    if exe is None:
        pytest.skip("bwrap is not installed (Debian/Ubuntu package: bubblewrap)")
    ok, detail = probe_bwrap(exe)
    if not ok:
        pytest.skip(f"bwrap cannot create a sandbox on this machine: {detail}")
    return exe


def _zip_with_train(tmp_path: Path, train_body: str, name: str) -> Path:
    """The dummy submission whose train() first runs ``train_body`` (indented code)."""
    model = DUMMY_MODEL + "\n_train = train\n\ndef train(train_dir):\n" + train_body + \
        "    _train(train_dir)\n"
    return make_zip(tmp_path / name, {"model.py": model, "labeling.py": DUMMY_LABELING})


def test_normal_submission_passes_in_the_sandbox(bwrap, tmp_path, small_dir, capfd):
    z = dummy_zip(tmp_path)
    rep = evaluate(z, small_dir, budgets=(0, 0.05), policy="both", time_limit=120,
                   sandbox="require")
    assert rep.sandbox == "bwrap"
    assert rep.isolation.startswith("bwrap (bubblewrap ")
    assert "isolation: bwrap" in rep.table()
    assert rep.to_dict()["sandbox"] == "bwrap"
    assert "WITHOUT isolation" not in capfd.readouterr().err
    # The same submission unconfined scores exactly the same, and says so on stderr.
    off = evaluate(z, small_dir, budgets=(0, 0.05), policy="both", time_limit=120,
                   sandbox="off")
    assert off.sandbox == "none" and "NONE (turned off by the user)" in off.isolation
    err = capfd.readouterr().err
    assert err.count("WITHOUT isolation") == 1, err
    for a, b in zip(rep.runs, off.runs, strict=True):
        assert a.metrics == b.metrics and a.n_revealed == b.n_revealed


def test_writes_outside_the_output_folder_do_not_land(bwrap, tmp_path, small_dir):
    outside = tmp_path / "outside"
    outside.mkdir()  # exists: without a sandbox the write below would succeed
    targets = {
        "outside": str(outside / "escaped.txt"),
        # A canary in the host's /tmp; it only appears (and is removed below) if the
        # sandbox failed. Inside, /tmp is a fresh tmpfs: the write succeeds and vanishes.
        "tmp": f"/tmp/bayesirt-sandbox-canary-{uuid.uuid4().hex}",
        "own folder": "written_by_model.txt",  # relative: the submission folder (cwd)
    }
    body = (f"    import json, os\n    results = {{}}\n"
            f"    for name, path in {targets!r}.items():\n"
            "        try:\n"
            "            with open(path, 'w') as fh:\n"
            "                fh.write('escaped')\n"
            "            results[name] = 'written'\n"
            "        except OSError as exc:\n"
            "            results[name] = f'{type(exc).__name__}: {exc.strerror}'\n"
            "    results['TMPDIR'] = os.environ.get('TMPDIR')\n"
            "    raise RuntimeError('WRITES ' + json.dumps(results))\n")
    z = _zip_with_train(tmp_path, body, "writer.zip")
    try:
        with pytest.raises(SubmissionError, match="model.train: RuntimeError: WRITES") as info:
            evaluate(z, small_dir, sandbox="require", **FAST)
        assert not (outside / "escaped.txt").exists()
        assert not Path(targets["tmp"]).exists()
    finally:
        Path(targets["tmp"]).unlink(missing_ok=True)
    results = json.loads(re.search(r"WRITES (\{.*?\})", str(info.value)).group(1))
    assert results["outside"] != "written", results  # hidden (/tmp) or read-only: an error
    assert results["own folder"] == "OSError: Read-only file system", results
    assert results["tmp"] == "written" and results["TMPDIR"] == "/tmp", results
    assert "it ran in the bwrap sandbox" in str(info.value)


def test_network_is_cut_off(bwrap, tmp_path, small_dir):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        body = ("    import socket\n"
                f"    with socket.create_connection(('127.0.0.1', {port}), timeout=5) as s:\n"
                "        s.sendall(b'hello from the submission')\n")
        z = _zip_with_train(tmp_path, body, "net.zip")
        with pytest.raises(SubmissionError, match=r"model.train: (ConnectionRefusedError|OSError)"):
            evaluate(z, small_dir, sandbox="require", **FAST)
        listener.settimeout(0)
        with pytest.raises(BlockingIOError):  # nothing ever reached the listener
            listener.accept()
        # Control: unconfined, the same code does reach it, so the port was reachable.
        listener.settimeout(None)
        rep = evaluate(z, small_dir, sandbox="off", **FAST)
        assert rep.sandbox == "none"
        listener.settimeout(5)
        conn, _ = listener.accept()
        with conn:
            assert conn.recv(100) == b"hello from the submission"


def _pids_with(marker: str) -> list[int]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return found


def test_time_limit_kills_everything_the_submission_started(bwrap, tmp_path, small_dir):
    marker = f"bayesirt-sandbox-sleeper-{uuid.uuid4().hex}"
    body = ("    import subprocess, sys, time\n"
            "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', "
            f"{marker!r}], start_new_session=True)\n"
            "    time.sleep(600)\n")
    z = _zip_with_train(tmp_path, body, "sleeper.zip")
    with pytest.raises(SubmissionError, match="time limit of 3 s"):
        evaluate(z, small_dir, budgets=(0,), policy="random", time_limit=3, sandbox="require")
    deadline = time.monotonic() + 10
    while _pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pids_with(marker) == []


def test_select_modes_and_the_fallback(tmp_path):
    assert select("off").kind == "none"
    with pytest.raises(InputError, match="sandbox must be one of"):
        select("container")
    with pytest.raises(ValueError, match="sandbox must be one of"):
        evaluate(tmp_path / "none.zip", tmp_path, sandbox="yes")  # before any work
    missing = str(tmp_path / "no-such-bwrap")
    box = select("auto", bwrap=missing)
    assert box.kind == "none" and "bwrap not found" in box.detail
    assert "WITHOUT isolation" in box.warning_line()
    assert box.command(["python", "x.py"], cwd=tmp_path, env={}) == ["python", "x.py"]
    with pytest.raises(SandboxUnavailableError, match="sandbox 'require'.*not found"):
        select("require", bwrap=missing)
    # A bwrap that exists but cannot build a sandbox (what disabled user namespaces look
    # like): the probe catches it, auto falls back, require refuses.
    broken = tmp_path / "bwrap"
    broken.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\n"
                      "exit 1\n")
    broken.chmod(0o755)
    box = select("auto", bwrap=str(broken))
    assert box.kind == "none" and "No permissions to create new namespace" in box.detail
    with pytest.raises(SandboxUnavailableError, match="No permissions"):
        select("require", bwrap=str(broken))


def test_sandbox_binds_back_an_interpreter_and_data_in_hidden_folders(bwrap, tmp_path,
                                                                      small_dir):
    # tmp_path is usually under /tmp, which the sandbox hides: data copied there must be bound
    # back read-only for the run to work at all.
    data = tmp_path / "data"
    shutil.copytree(small_dir / "train", data / "train")
    shutil.copytree(small_dir / "test", data / "test")
    shutil.copytree(small_dir / "reference", data / "reference")
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    rep = evaluate(dummy_zip(tmp_path), data, sandbox="require", **FAST)
    assert rep.sandbox == "bwrap" and rep.n_test_pairs == 1532
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before


def test_sandbox_runs_an_interpreter_from_a_hidden_folder(bwrap, tmp_path, small_dir):
    # A venv under tmp_path (usually below the hidden /tmp): its pyvenv.cfg, bin/ and
    # site-packages must be bound back. numpy comes from the project's venv through a .pth.
    base = Path(getattr(sys, "_base_executable", sys.executable))
    venv = tmp_path / "venv"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    (site_dir,) = venv.glob("lib/python*/site-packages")
    (site_dir / "project.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    py = venv / "bin" / "python"
    rep = evaluate(dummy_zip(tmp_path), small_dir, python=py, sandbox="require", **FAST)
    assert rep.sandbox == "bwrap" and rep.python == str(py)
