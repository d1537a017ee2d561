"""Test-wide settings: CPU only, strict dtype and rank promotion, a seeded key fixture."""

import os

# Process-global JAX settings must be set before JAX starts (house rule 4).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

SMALL = Path(__file__).resolve().parents[1] / "bayesirt" / "datasets" / "real_multibench_small"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _strict_jax():
    """Strict promotion catches silent float64/int mixing and broadcasting in index maths."""
    try:
        import jax
    except ImportError:  # the numpy-only tests do not need JAX
        yield
        return
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    yield


@pytest.fixture
def rng_key():
    """A fixed JAX PRNG key; tests split it, never reuse it."""
    import jax

    return jax.random.key(20240601)


@pytest.fixture(scope="session")
def small_dir() -> Path:
    """The bundled real-multibench-small data set (train/, test/, reference/, reveal/)."""
    return SMALL


@pytest.fixture
def numpyro_lenient():
    """Standard promotion while NumPyro samples.

    NumPyro's own distributions (Bernoulli.log_prob's logical_xor, Beta's Dirichlet) rely on
    implicit dtype and rank promotion, so fits run under JAX's default rules; our own JAX code
    is tested outside this fixture under the strict settings.
    """
    import jax

    with jax.numpy_dtype_promotion("standard"), jax.numpy_rank_promotion("allow"):
        yield


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def headless_chromium(tmp_path):
    """Open a local page in real headless Chromium: screenshot it, return the rendered DOM.

    The pages mark how their inline images loaded (``data-images-total``, ``-broken`` ...) on
    the body from an onload script, so the DOM tells whether every image rendered. Skips when
    Chromium is not installed (``.ci/run`` installs it).
    """
    import shutil
    import subprocess

    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium not installed (.ci/run installs it)")
    profile = tmp_path / "chromium-profile"
    base = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}"]

    def render(page: Path, window: str = "1400,1000") -> str:
        shot = tmp_path / f"{page.stem}-shot.png"
        subprocess.run(base + [f"--window-size={window}", f"--screenshot={shot}",
                               page.as_uri()], check=True, capture_output=True, timeout=120)
        assert shot.stat().st_size > 10_000, "the screenshot is (nearly) blank"
        return subprocess.run(base + ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                              check=True, capture_output=True, text=True, timeout=120).stdout

    yield render
    shutil.rmtree(profile, ignore_errors=True)
