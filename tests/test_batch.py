"""Batch fitting on a real Dask LocalCluster, resume, a killed worker, and the compare page."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bayesirt.errors import InputError

# Short chains: the tests check the machinery, not convergence (the verdicts say NOT
# converged, which the page must show as such).
SHORT = "chains = 2\nwarmup = 100\ndraws = 100\ninit_steps = 300\n"


def cli(*args, timeout=600):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-m", "bayesirt.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env)


def write_plan(folder: Path, body: str, name: str = "plan.toml") -> Path:
    from bayesirt.data import bundled_dataset

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'data = "{bundled_dataset()}"\n\n[defaults]\n{SHORT}\n{body}')
    return path


@pytest.fixture(scope="module", autouse=True)
def _dask_scratch(tmp_path_factory):
    """Dask workers' scratch folders under tmp_path too, not in the system temp dir."""
    import dask

    with dask.config.set({"temporary-directory": str(tmp_path_factory.mktemp("dask"))}):
        yield


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """One real 2 x 2 batch (rasch, 2pl x seeds 0, 1) on a LocalCluster of 2 workers."""
    from bayesirt import pipeline

    root = tmp_path_factory.mktemp("batch")
    plan = write_plan(root, '[grid]\nmodel = ["rasch", "2pl"]\nseed = [0, 1]\n')
    lines: list[str] = []
    started = time.perf_counter()
    report = pipeline.batch(plan, root / "out", workers=2, progress=False,
                            echo=lines.append)
    return {"plan": plan, "out": root / "out", "report": report, "lines": lines,
            "seconds": time.perf_counter() - started}


# --- plans: parsing, naming, errors (no fitting) ------------------------------------------


def test_plan_expands_grid_and_fits_with_stable_names(tmp_path):
    from bayesirt.batch import load_plan

    path = write_plan(tmp_path, '[grid]\nmodel = ["rasch", "2pl"]\nseed = [0, 1, 2]\n\n'
                                '[[fit]]\nmodel = "hier2pl"\nguess = true\nseed = [0, 1]\n\n'
                                '[[fit]]\nmodel = "rasch"\nseed = 0\n')
    plan = load_plan(path)
    assert len(plan.fits) == 8 and plan.duplicates == 1  # the last [[fit]] repeats the grid
    names = [f.name for f in plan.fits]
    assert len(set(names)) == 8
    assert names[0].startswith("rasch-s0-") and any(n.startswith("hier2pl-guess-s1-")
                                                    for n in names)
    assert all(f.config["log_likelihood"] for f in plan.fits)  # batch default, for LOO
    # Where the plan is silent, each model's own step-size target (hier2pl's is smaller).
    assert {f.config["model"]: f.config["target_accept"] for f in plan.fits} == {
        "rasch": 0.8, "2pl": 0.8, "hier2pl": 0.99}
    assert all(f.heldout for f in plan.fits)  # the bundled set has reference/
    assert load_plan(path).fits == plan.fits  # stable across reads
    # Equal but for the seed: same variant, different settings fingerprint.
    rasch = [f for f in plan.fits if f.label == "rasch"]
    assert len({f.variant for f in rasch}) == 1
    assert len({f.settings_fingerprint for f in rasch}) == 3
    # A changed sampler setting is a different fit (new name), not a resume of the old one.
    other = load_plan(write_plan(tmp_path / "b", '[grid]\nmodel = "rasch"\nwarmup = 101\n'))
    assert other.fits[0].name != names[0]


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ('[grid]\nmodel = "rasch"\nwarmpu = 100\n', 11, ["unknown key 'warmpu'", "[grid]"]),
        ('[grid]\nmodel = ["rasch", "hier3pl"]\n', 10, ["unknown model 'hier3pl'", "hier2pl"]),
        ('[grid]\nmodel = ["rasch", "hier2pl"]\nguess = true\n', 11,
         ["does not take guess", "[[fit]]"]),
        ('[[fit]]\nmodel = "rasch"\n\n[[fit]]\nmodel = "2pl"\nchains = "two"\n', 14,
         ["chains in [[fit]] #2", "integer"]),
        ('[sampler]\nchains = 2\n[grid]\nmodel = "rasch"\n', 9, ["unknown table 'sampler'"]),
        ('[batch]\nretry = 2\n[grid]\nmodel = "rasch"\n', 10, ["unknown key 'retry'"]),
        ('[defaults]\n', None, ["Cannot declare"]),  # TOML syntax: a table declared twice
    ],
)
def test_bad_plan_names_line_and_key(tmp_path, body, line, words):
    from bayesirt.batch import load_plan

    path = write_plan(tmp_path, body)
    with pytest.raises(InputError) as info:
        load_plan(path)
    message = str(info.value)
    assert "\n" not in message
    if line is not None:
        assert message.startswith(f"{path}:{line}: "), message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('[grid]\nmodel = ["rasch", "2pl"]\nwarmpu = 100\n', [":11:", "unknown key 'warmpu'"]),
        ('[grid]\nmodel = "rasch"\ndata = "no/such/folder"\n',
         [":11:", "data 'no/such/folder' does not exist"]),
    ],
)
def test_cli_bad_plan_is_one_line_before_any_fit(tmp_path, body, words):
    plan = write_plan(tmp_path, body)
    out = tmp_path / "out"
    proc = cli("batch", plan, "--out", out, "--no-progress", timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayesirt batch: error: "), proc.stderr
    for word in words:
        assert word in lines[0]
    assert not out.exists()  # refused before the output folder, let alone a fit


def test_worker_environment_splits_the_cores(monkeypatch):
    from bayesirt.batch.cluster import worker_environment

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_dump_to=x")
    two = worker_environment(2, cores=2)
    assert two["XLA_FLAGS"] == "--xla_dump_to=x --xla_force_host_platform_device_count=1"
    assert two["OPENBLAS_NUM_THREADS"] == two["OMP_NUM_THREADS"] == "1"
    assert two["JAX_PLATFORMS"] == "cpu"
    one = worker_environment(1, cores=2)
    assert one["XLA_FLAGS"].endswith("device_count=2") and one["MKL_NUM_THREADS"] == "2"
    assert worker_environment(3, cores=2)["OMP_NUM_THREADS"] == "1"


def test_fit_that_fails_writes_failed_json_and_does_not_raise(tmp_path):
    from bayesirt.batch import load_plan
    from bayesirt.batch.worker import run_fit

    spec = load_plan(write_plan(tmp_path, '[grid]\nmodel = "rasch"\n')).fits[0].to_dict()
    spec["data_fingerprint"] = "0" * 64  # the data "changed" after planning
    record = run_fit(spec, str(tmp_path / "out"), {"max_divergent_fraction": 0.1})
    assert record["status"] == "failed" and "data changed" in record["error"]
    saved = json.loads((tmp_path / "out" / spec["name"] / "failed.json").read_text())
    assert saved["error"] == record["error"] and "Traceback" in saved["traceback"]
    assert not (tmp_path / "out" / spec["name"] / "posterior.nc").exists()


# --- the real batch --------------------------------------------------------------------------


def test_grid_writes_four_posteriors_and_summaries(grid):
    from bayesirt.batch.cluster import available_cores
    from bayesirt.posteriors import load

    report, out = grid["report"], grid["out"]
    assert report.count("ok") == 4 and report.count("failed") == 0, report.records
    assert "local cluster of 2 worker" in report.where
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(folders) == 4
    draws = {}
    for folder in folders:
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "ok" and summary["name"] == folder.name
        assert summary["headline"]["n_parameters"] > 600
        assert summary["verdict"].startswith("not converged")  # 100 draws: honest verdict
        assert 0.3 < summary["heldout"]["log_loss"] < 0.7 and summary["heldout"]["n"] == 1532
        # The worker saw the environment it was given: cores split between 2 workers.
        assert summary["n_devices"] == max(1, available_cores() // 2)
        tree = load(folder / "posterior.nc")
        assert "log_likelihood" in tree.children
        draws[folder.name] = float(tree.posterior["ability"].values.mean())
        tree.close()
    assert len(set(draws.values())) == 4  # seeds give different draws
    batch = json.loads((out / "batch.json").read_text())
    assert [f["status"] for f in batch["fits"]] == ["ok"] * 4


def test_rerun_skips_finished_fits_without_a_cluster(grid):
    from bayesirt import pipeline

    out = grid["out"]
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/posterior.nc")}
    lines: list[str] = []
    report = pipeline.batch(grid["plan"], out, workers=2, progress=False, echo=lines.append)
    assert report.count("skipped") == 4 and report.where is None
    assert "4 already done, 0 to run" in lines[0]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/posterior.nc")} == before


def test_compare_page_and_json(grid, tmp_path, headless_chromium):
    out = grid["out"]
    page, numbers = tmp_path / "compare.html", tmp_path / "compare.json"
    proc = cli("compare", out, "--out", page, "--json", numbers, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "page written to" in proc.stdout and "| fit | elpd_loo" in proc.stdout
    result = json.loads(numbers.read_text())
    (group,) = result["groups"]
    table = group["loo"]["table"]
    assert len(table) == 4 and [e["rank"] for e in table] == [0, 1, 2, 3]
    assert table[0]["elpd_diff"] == 0 and all(e["elpd_diff"] <= 0 for e in table)
    assert all(e["dse"] >= 0 for e in table[1:]) and all(e["se"] > 0 for e in table)
    assert abs(sum(e["weight"] for e in table) - 1) < 1e-6
    assert all(e["pareto_k"]["n"] == 8844 for e in table)
    spread = {s["label"]: s for s in group["seed_spread"]}
    assert set(spread) == {"rasch", "2pl"} and spread["rasch"]["seeds"] == [0, 1]
    assert spread["2pl"]["metrics"]["elpd"]["n"] == 2
    assert all(f["log_loss"] is not None and f["verdict"] for f in group["fits"])
    html = page.read_text()
    assert "http://" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") >= 2
    dom = headless_chromium(page)
    assert 'data-images-broken="0"' in dom
    assert int(dom.split('data-images-total="')[1].split('"')[0]) >= 2


def test_compare_groups_fits_by_data_and_never_mixes_them(grid, tmp_path):
    from bayesirt import pipeline

    names = sorted(p.name for p in grid["out"].iterdir() if p.is_dir())
    batch = tmp_path / "mixed"
    for name in names[:2]:
        shutil.copytree(grid["out"] / name, batch / name)
    moved = batch / names[1] / "summary.json"  # pretend this fit saw other data
    summary = json.loads(moved.read_text())
    summary["data_fingerprint"] = "f" * 64
    moved.write_text(json.dumps(summary))
    (batch / "broken").mkdir()
    (batch / "broken" / "failed.json").write_text(json.dumps({"name": "broken",
                                                               "error": "boom"}))
    result = pipeline.compare(batch, out=tmp_path / "page.html")
    assert len(result["groups"]) == 2
    assert [len(g["loo"]["table"]) for g in result["groups"]] == [1, 1]
    assert result["n_failed"] == 1 and result["failed"][0]["error"] == "boom"
    assert "Failed fits" in (tmp_path / "page.html").read_text()
    with pytest.raises(InputError, match="no such batch folder"):
        pipeline.compare(tmp_path / "nothing")


def _initial_environment() -> dict:
    """The environment a process was started with (not what it changed since)."""
    raw = Path("/proc/self/environ").read_bytes().split(b"\0")
    return {k.decode(): v.decode() for k, _, v in (x.partition(b"=") for x in raw if x)}


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_killed_worker_fails_its_fit_and_rerun_completes_only_it(tmp_path, monkeypatch):
    from distributed import Client

    from bayesirt import pipeline
    from bayesirt.batch.cluster import local_cluster

    plan = write_plan(tmp_path, '[grid]\nmodel = "rasch"\nseed = [0, 1, 2]\n')
    out = tmp_path / "out"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")  # this process's own value must not leak
    with local_cluster(2, retries=0) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        # Thread counts and host devices were in each worker's environment from its start
        # (numpy reads them when it loads, before any Nanny env= is applied).
        for env in client.run(_initial_environment).values():
            assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1"
            assert env["XLA_FLAGS"].endswith("--xla_force_host_platform_device_count=1")
            assert env["JAX_PLATFORMS"] == "cpu"
        box: dict = {}

        def run() -> None:
            box["report"] = pipeline.batch(plan, out, scheduler=cluster.scheduler_address,
                                           progress=False, echo=lambda line: None)

        thread = threading.Thread(target=run)
        thread.start()
        victim, seen = None, None
        deadline = time.monotonic() + 240
        while victim is None and time.monotonic() < deadline:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            if busy and seen is None:
                seen = time.monotonic()
            if busy and time.monotonic() - seen > 3:  # well inside the fit (compiling)
                victim = next(iter(busy))
                killed_key = busy[victim][0]
                os.kill(pids[victim], signal.SIGKILL)
            time.sleep(0.2)
        assert victim is not None, "no fit ever started"
        thread.join(timeout=400)
        assert not thread.is_alive()
        first = box["report"]
        assert first.count("failed") == 1 and first.count("ok") == 2, first.records
        (failed,) = [r for r in first.records if r["status"] == "failed"]
        assert failed["name"] in killed_key and "worker process" in failed["error"]
        record = json.loads((out / failed["name"] / "failed.json").read_text())
        assert "died" in record["error"]
        assert not (out / failed["name"] / "summary.json").exists()
        finished = {p: p.stat().st_mtime_ns for p in out.glob("*/posterior.nc")}
        assert len(finished) == 2

        second = pipeline.batch(plan, out, scheduler=cluster.scheduler_address,
                                progress=False, echo=lambda line: None)
    assert second.count("skipped") == 2 and second.count("ok") == 1, second.records
    assert {r["name"] for r in second.records if r["status"] == "ok"} == {failed["name"]}
    assert not (out / failed["name"] / "failed.json").exists()
    assert json.loads((out / failed["name"] / "summary.json").read_text())["status"] == "ok"
    for path, stamp in finished.items():
        assert path.stat().st_mtime_ns == stamp  # the finished fits were not redone
