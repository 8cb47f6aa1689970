"""JAX's persistent compilation cache, on by default (numpyro_pgm._compilation_cache).

The cache is configured when ``numpyro_pgm`` is imported, so every test runs in a
fresh interpreter with its own environment.
"""

import json
import os
import subprocess
import sys

import pytest

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
