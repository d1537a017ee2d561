"""What a user sees when something is wrong: one line naming the path or value, never a
traceback for their mistake, a traceback for ours, and no fit lost to a bad output path.

Every test runs the real command in a subprocess, as a user would.
"""

import os
import subprocess
import sys
import time

import pytest

from bayesirt.data import bundled_dataset


def run(*args, env=None, timeout=600):
    full_env = dict(os.environ, JAX_PLATFORMS="cpu", **(env or {}))
    return subprocess.run([sys.executable, "-m", "bayesirt.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def quick_fit(tmp_path_factory):
    """A deliberately short (unconverged) fit: enough to predict, bundle and warn about."""
    out = tmp_path_factory.mktemp("quick") / "posterior.nc"
    proc = run("fit", bundled_dataset(), "--out", out, "--chains", 2, "--warmup", 10,
               "--draws", 60, "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.parametrize("case", ["folder", "file_in_the_way", "unwritable_folder",
                                  "uncreatable_folder"])
def test_bad_fit_output_fails_before_sampling(case, tmp_path):
    out = {
        "folder": tmp_path,
        "file_in_the_way": tmp_path / "a_file" / "posterior.nc",
        # /proc refuses new files even to root, unlike a chmod-ed folder.
        "unwritable_folder": "/proc/posterior.nc",
        "uncreatable_folder": "/proc/bayesirt-test/posterior.nc",
    }[case]
    (tmp_path / "a_file").write_text("not a folder")
    started = time.perf_counter()
    proc = run("fit", bundled_dataset(), "--out", out, "--no-progress")
    elapsed = time.perf_counter() - started
    line = one_error_line(proc)
    expected = {"folder": "is a folder", "file_in_the_way": "is a file, not a folder",
                "unwritable_folder": "cannot write in /proc",
                "uncreatable_folder": "cannot create folder"}[case]
    assert line.startswith("bayesirt fit: error: ") and str(out) in line and expected in line
    # Nothing was sampled: the fit's first line never came, and the refusal took seconds
    # (measured ~3 s here, mostly imports; the issue asks for under 5 s).
    assert "fitting" not in proc.stdout
    assert elapsed < 20, elapsed


def test_fit_whose_output_vanishes_during_sampling_keeps_the_posterior(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    spare = tmp_path / "tmpdir"
    spare.mkdir()
    env = dict(os.environ, JAX_PLATFORMS="cpu", TMPDIR=str(spare))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bayesirt.cli", "fit", str(bundled_dataset()), "--out",
         str(folder / "posterior.nc"), "--chains", "1", "--warmup", "30", "--draws", "30",
         "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()
    assert first.startswith("fitting"), first
    # The output folder disappears while sampling, and a file takes its name, so neither
    # the folder nor anything beside the requested path can be written.
    folder.rmdir()
    folder.write_text("in the way")
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 2, stdout + stderr
    saved = list(spare.glob("bayesirt-*-posterior.nc"))
    assert len(saved) == 1 and saved[0].stat().st_size > 0
    assert f"saved to {saved[0]}" in stdout
    assert str(saved[0]) in stderr and "Traceback" not in stderr
    from bayesirt.posteriors import load

    assert "ability" in load(saved[0]).posterior


@pytest.mark.parametrize("case", ["missing_posterior", "posterior_is_folder",
                                  "out_is_folder"])
def test_predict_path_errors_are_one_line(case, tmp_path):
    root = bundled_dataset()
    posterior = {"missing_posterior": tmp_path / "nope.nc",
                 "posterior_is_folder": tmp_path,
                 "out_is_folder": tmp_path / "nope.nc"}[case]
    out = tmp_path if case == "out_is_folder" else tmp_path / "pred.csv"
    line = one_error_line(run("predict", posterior, root / "test", "--out", out,
                              "--no-progress"))
    assert line.startswith("bayesirt predict: error: ")
    assert str(out if case == "out_is_folder" else posterior) in line


def test_every_command_creates_missing_output_folders(quick_fit, tmp_path):
    root = bundled_dataset()
    pred = tmp_path / "new" / "deeper" / "pred.csv"
    proc = run("predict", quick_fit, root / "test", "--out", pred, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert pred.is_file()
    pairs = tmp_path / "other" / "pairs.csv"
    proc = run("acquire", quick_fit, root / "test", "--budget", 5, "--out", pairs,
               "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert pairs.is_file()


def test_budget_above_the_candidates_is_said(quick_fit, tmp_path):
    root = bundled_dataset()
    n_pairs = len((root / "test" / "test_pairs.csv").read_text().splitlines()) - 1
    proc = run("acquire", quick_fit, root / "test", "--budget", n_pairs + 100, "--out",
               tmp_path / "pairs.csv", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "--budget" in line]
    assert len(notes) == 1 and f"{n_pairs:,} candidate pairs" in notes[0]


def test_bundle_warns_on_an_unconverged_posterior_and_strict_refuses(quick_fit, tmp_path):
    proc = run("bundle", quick_fit, "--out", tmp_path / "a.zip")
    assert proc.returncode == 0, proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert len(warning) == 1 and "did not pass the convergence checks" in warning[0]
    assert "worst parameter" in warning[0]
    assert (tmp_path / "a.zip").is_file()
    line = one_error_line(run("bundle", quick_fit, "--out", tmp_path / "b.zip", "--strict"))
    assert "--strict" in line and "worst parameter" in line
    assert not (tmp_path / "b.zip").exists()


def test_a_bug_is_shown_as_a_bug_not_as_a_user_error(tmp_path):
    # A TypeError from inside a command (here: planted) is not the user's fault: traceback,
    # the "internal error" line, exit 70.
    code = ("import sys, bayesirt.cli as c, bayesirt.commands as k\n"
            "def boom(args):\n    raise TypeError('planted bug')\n"
            "k.cmd_info = boom\n"
            "sys.exit(c.main(['info', '.']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 70
    assert "Traceback" in proc.stderr and "planted bug" in proc.stderr
    assert "internal error" in proc.stderr.strip().splitlines()[-1]


def test_unknown_models_in_pairs_and_labels_are_said_in_one_line_each(quick_fit, tmp_path):
    import shutil

    root = bundled_dataset()
    test = tmp_path / "test"
    shutil.copytree(root / "test", test)
    item = (root / "test" / "test_pairs.csv").read_text().splitlines()[1].split(",")[1]
    with open(test / "test_pairs.csv", "a") as fh:
        fh.write(f"ghost/model-x,{item}\n")
    labels = tmp_path / "labels.csv"
    labels.write_text(f"model_id,item_id,label\nphantom/model-y,{item},1\n")
    out = tmp_path / "pred.csv"
    proc = run("predict", quick_fit, test, "--train-dir", root / "train", "--labeled", labels,
               "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if ": warning: " in line]
    assert all(line.startswith("bayesirt predict: warning: ") for line in warnings)
    assert "Traceback" not in proc.stderr and "warnings.warn" not in proc.stderr
    pair_lines = [line for line in warnings if "ghost/model-x" in line]
    label_lines = [line for line in warnings if "phantom/model-y" in line]
    assert len(pair_lines) == 1 and "prior" in pair_lines[0]
    assert len(label_lines) == 1
    assert out.read_text().count("ghost/model-x") == 1


def test_evaluate_confines_a_submission_that_writes_outside_its_folder(tmp_path):
    import shutil
    import zipfile

    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap not installed (.ci/run installs it)")
    escape = tmp_path / "escaped.txt"
    zip_path = tmp_path / "writer.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("model.py", f"def train(d):\n    open({str(escape)!r}, 'w').write('x')\n"
                                "def predict(a, b, c):\n    return []\n")
    proc = run("evaluate", zip_path, bundled_dataset(), "--budgets", "0", "--sandbox",
               "require")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert not escape.exists()
    failed = [line for line in proc.stderr.splitlines() if "the submission failed" in line]
    # Inside the sandbox /tmp is an empty tmpfs (tmp_path is not there) and the rest of
    # the system is read-only: either way the write fails.
    assert len(failed) == 1
    assert "No such file or directory" in failed[0] or "Read-only file system" in failed[0]
