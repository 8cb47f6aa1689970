"""Shared test configuration: CPU only, strict JAX, and the opt-in slow tier."""

import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
# One BLAS/OpenMP thread: on 2 cores, numpy/scikit-learn threads otherwise fight
# JAX's own thread pool (a scikit-learn fit measured 60x slower oversubscribed).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# numpyro_pgm turns JAX's persistent compilation cache on at import. Tests use a
# folder of their own session (subprocesses inherit it): they neither read
# programs compiled outside the session nor leave any in the user's cache.
if "NUMPYRO_PGM_CACHE_DIR" not in os.environ:
    _SESSION_CACHE = tempfile.mkdtemp(prefix="numpyro-pgm-test-cache-")
    os.environ["NUMPYRO_PGM_CACHE_DIR"] = _SESSION_CACHE
else:
    _SESSION_CACHE = None

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_platforms", "cpu")
# Rank promotion stays "allow": NumPyro's own samplers (init_to_sample, the
# distributions' sample paths) broadcast implicitly and fail under "raise".
jax.config.update("jax_numpy_rank_promotion", "allow")


def pytest_addoption(parser):
    parser.addoption(
        "--runslow", action="store_true", default=False, help="run the slow tier"
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long statistical tests (--runslow)")


def pytest_unconfigure(config):
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip_slow = pytest.mark.skip(reason="slow tier: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
