"""JAX's persistent compilation cache, on by default (numpyro_pgm._compilation_cache).

The cache is configured when ``numpyro_pgm`` is imported, so every test runs in a
fresh interpreter with its own environment.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from numpyro_pgm._atomic_cache import AtomicFileCache
from numpyro_pgm._compilation_cache import (
    PRUNE_TO,
    STALE_TEMPORARY_SECONDS,
    TEMPORARY_SUFFIX,
    prune_compilation_cache,
)

FIT_AND_REPORT = """
import json, jax, numpyro, numpyro.distributions as dist
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
import numpyro_pgm as pgm

def model(y=None):
    mu = numpyro.sample('mu', dist.Normal(0, 1))
    with numpyro.plate('point', 3):
        numpyro.sample('y', dist.Normal(mu, 1), obs=y)

result = pgm.fit(jax.random.key(0), model, data={'y': jax.numpy.ones(3)},
                 method='nuts', num_warmup=50, num_samples=50, num_chains=2,
                 progress_bar=False, checks=False)
print(json.dumps({
    'dir': jax.config.jax_compilation_cache_dir,
    'enabled': jax.config.jax_enable_compilation_cache,
    'hits': sum(name.endswith('cache_hits') for name in events),
    'requests': sum(name.endswith('compile_requests_use_cache') for name in events),
    'max_size': jax.config.jax_compilation_cache_max_size,
    'store': type(__import__('jax._src.compilation_cache',
                             fromlist=['_cache'])._cache).__name__,
    'mu': result.samples['mu'].tolist(),
}))
"""


def run_python(script: str, **environment: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **environment}
    for name, value in environment.items():
        if value is None:
            env.pop(name)
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )


def fit_in_fresh_process(**environment) -> dict:
    output = run_python(FIT_AND_REPORT, **environment).stdout
    return json.loads(output.strip().splitlines()[-1])


def test_a_second_process_loads_the_sampler_from_the_cache(tmp_path):
    folder = tmp_path / "cache"
    first = fit_in_fresh_process(NUMPYRO_PGM_CACHE_DIR=str(folder))
    assert first["dir"] == str(folder)
    assert first["hits"] == 0
    assert any(folder.iterdir())
    second = fit_in_fresh_process(NUMPYRO_PGM_CACHE_DIR=str(folder))
    assert second["hits"] >= 1
    # The same program, so the same draws.
    assert second["mu"] == first["mu"]


def test_every_program_is_cached_the_small_eager_ones_included(tmp_path):
    # A fit compiles the sampler and a few one-operation programs (the chains'
    # keys, the draws' postprocessing), each well under 0.1 s; JAX's default
    # threshold (1 s) or ours before (0.1 s) left those to be compiled again in
    # every process.
    folder = tmp_path / "cache"
    first = fit_in_fresh_process(NUMPYRO_PGM_CACHE_DIR=str(folder))
    second = fit_in_fresh_process(NUMPYRO_PGM_CACHE_DIR=str(folder))
    assert first["requests"] >= 3
    assert second["hits"] == second["requests"] == first["requests"]
    # Our store: no access-time files, no scan of the folder per write, and
    # (a JAX upgrade that moved its internals would show here) really in use.
    assert first["store"] == second["store"] == "AtomicFileCache"
    assert first["max_size"] == -1
    assert not list(folder.glob("*-atime"))


def test_without_jax_internals_the_cache_falls_back_to_jax_capped_store(tmp_path):
    script = f"""
import jax
from numpyro_pgm import _compilation_cache
_compilation_cache._install_atomic_store = lambda path: False
_compilation_cache.enable_compilation_cache({str(tmp_path)!r})
print(jax.config.jax_persistent_cache_min_compile_time_secs,
      jax.config.jax_compilation_cache_max_size)
"""
    output = run_python(script, NUMPYRO_PGM_CACHE_DIR="off").stdout.split()
    assert output == ["0.1", str(2**30)]


def test_the_store_renames_a_complete_file_into_place(tmp_path, monkeypatch):
    store = AtomicFileCache(tmp_path)
    seen = []
    real_replace = os.replace

    def replace(source, target):
        # At the rename the entry is not there yet and the temporary is whole.
        with open(source, "rb") as handle:
            seen.append((os.path.exists(target), handle.read()))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    store.put("k1", b"compiled program")
    assert seen == [(False, b"compiled program")]
    assert store.get("k1") == b"compiled program"
    assert store.get("k2") is None
    store.put("k1", b"another")  # an existing key is kept, as in JAX's store
    assert store.get("k1") == b"compiled program"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k1-cache"]


class HalfWrite:
    """A file handle interrupted (Ctrl-C) halfway through its write."""

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, value):
        self.handle.write(value[: len(value) // 2])
        self.handle.flush()
        raise KeyboardInterrupt


def test_an_interrupted_write_leaves_no_entry(tmp_path, monkeypatch):
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: HalfWrite(real_fdopen(*a, **k)))
    with pytest.raises(KeyboardInterrupt):
        AtomicFileCache(tmp_path).put("k1", b"compiled program")
    assert list(tmp_path.iterdir()) == []


def test_jax_own_uncapped_store_leaves_a_truncated_entry(tmp_path, monkeypatch):
    # What the store above is for: JAX's store, interrupted the same way.
    from pathlib import Path

    from jax._src.lru_cache import LRUCache

    def write_bytes(self, value):
        with open(self, "wb") as handle:
            HalfWrite(handle).write(value)

    store = LRUCache(str(tmp_path), max_size=-1)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(KeyboardInterrupt):
        store.put("k1", b"compiled program")
    assert (tmp_path / "k1-cache").read_bytes() == b"compiled"


def test_pruning_deletes_stale_temporaries_only(tmp_path):
    stale = tmp_path / f".k1-abc{TEMPORARY_SUFFIX}"
    live = tmp_path / f".k2-def{TEMPORARY_SUFFIX}"
    for path in (stale, live):
        path.write_bytes(b"partial")
    old = time.time() - 2 * STALE_TEMPORARY_SECONDS
    os.utime(stale, (old, old))
    assert prune_compilation_cache(tmp_path, max_bytes=10_000) == 0
    assert not stale.exists()
    assert live.exists()


def make_entries(folder, count, size=100):
    """``count`` fake entries, entry i last used at time 1000 + i."""
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"jit_f-{i:04d}-cache"
        path.write_bytes(b"x" * size)
        os.utime(path, (1000 + i, 1000 + i))
        paths.append(path)
    return paths


def test_pruning_deletes_the_least_recently_used_entries_below_the_cap(tmp_path):
    paths = make_entries(tmp_path, 10)
    (tmp_path / "jit_f-0000-atime").write_bytes(b"12345678")
    (tmp_path / "notes.txt").write_bytes(b"y" * 10_000)
    deleted = prune_compilation_cache(tmp_path, max_bytes=500)
    # 1000 bytes > 500: the oldest go until at most PRUNE_TO * 500 remain.
    kept = int(PRUNE_TO * 500) // 100
    assert deleted == 10 - kept
    assert [p.exists() for p in paths] == [False] * (10 - kept) + [True] * kept
    assert not (tmp_path / "jit_f-0000-atime").exists()
    assert (tmp_path / "notes.txt").exists()


def test_pruning_leaves_a_cache_within_its_cap_alone(tmp_path):
    paths = make_entries(tmp_path, 5)
    assert prune_compilation_cache(tmp_path, max_bytes=500) == 0
    assert all(p.exists() for p in paths)


def test_pruning_deletes_empty_entries_whatever_the_size(tmp_path):
    # An entry a process was interrupted writing: JAX cannot read it, and
    # never replaces it (it skips keys whose file exists).
    paths = make_entries(tmp_path, 3)
    broken = tmp_path / "jit_g-0000-cache"
    broken.write_bytes(b"")
    assert prune_compilation_cache(tmp_path, max_bytes=10_000) == 1
    assert not broken.exists()
    assert all(p.exists() for p in paths)


@pytest.mark.parametrize("max_bytes", [-1, 1.5, "1GB", True])
def test_pruning_rejects_an_impossible_cap(tmp_path, max_bytes):
    paths = make_entries(tmp_path, 3)
    with pytest.raises(ValueError, match="max_bytes must be an integer >= 0"):
        prune_compilation_cache(tmp_path, max_bytes=max_bytes)
    assert all(p.exists() for p in paths)


def test_pruning_names_a_folder_that_is_not_there(tmp_path):
    with pytest.raises(ValueError, match="directory must be an existing"):
        prune_compilation_cache(tmp_path / "missing", max_bytes=0)


def test_a_recent_read_keeps_an_old_entry(tmp_path):
    paths = make_entries(tmp_path, 10)
    # Written first but read last (access time now): it outlives the others.
    os.utime(paths[0], (time.time(), 1000))
    prune_compilation_cache(tmp_path, max_bytes=500)
    assert paths[0].exists()
    # The oldest by write time, so ordering by write time alone would delete it.
    assert not paths[1].exists()


def test_turning_the_cache_on_prunes_it_in_the_background(tmp_path):
    folder = tmp_path / "cache"
    make_entries(folder, 10)
    script = f"""
import threading, numpyro_pgm as pgm
from numpyro_pgm import _compilation_cache
_compilation_cache.MAX_CACHE_BYTES = 500
pgm.enable_compilation_cache({str(folder)!r})
for thread in threading.enumerate():
    if thread.name == "numpyro_pgm-cache-prune":
        thread.join()
"""
    run_python(script, NUMPYRO_PGM_CACHE_DIR="off")
    remaining = sum(p.stat().st_size for p in folder.glob("*-cache"))
    assert remaining <= PRUNE_TO * 500


@pytest.mark.parametrize("value", ["off", "0", "", "None"])
def test_the_environment_variable_turns_the_cache_off(tmp_path, value):
    found = fit_in_fresh_process(NUMPYRO_PGM_CACHE_DIR=value)
    assert found["dir"] is None
    assert found["hits"] == 0


def test_a_cache_the_user_configured_for_jax_is_left_alone(tmp_path):
    theirs = tmp_path / "theirs"
    found = fit_in_fresh_process(
        NUMPYRO_PGM_CACHE_DIR=str(tmp_path / "ours"),
        JAX_COMPILATION_CACHE_DIR=str(theirs),
    )
    assert found["dir"] == str(theirs)
    assert not (tmp_path / "ours").exists()


def test_an_unwritable_folder_warns_and_fits_without_a_cache(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    completed = run_python(FIT_AND_REPORT, NUMPYRO_PGM_CACHE_DIR=str(blocker / "cache"))
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    assert found["dir"] is None
    assert "NUMPYRO_PGM_CACHE_DIR=off" in completed.stderr
    assert blocker.read_text() == "not a folder"


def test_switching_the_cache_in_a_running_process(tmp_path):
    script = f"""
import jax, numpyro_pgm as pgm
folder = pgm.enable_compilation_cache({str(tmp_path / "mine")!r})
assert jax.config.jax_compilation_cache_dir == str(folder)
assert folder.is_dir()
pgm.disable_compilation_cache()
assert not jax.config.jax_enable_compilation_cache
try:
    pgm.enable_compilation_cache({str(tmp_path / "file" / "below")!r})
except ValueError as error:
    print(error)
"""
    (tmp_path / "file").write_text("")
    output = run_python(script, NUMPYRO_PGM_CACHE_DIR="off").stdout
    assert "directory must be a folder" in output
    assert "file/below" in output
