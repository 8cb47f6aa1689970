"""The numpyro-pgm command: list, run, check, report; exit statuses."""

import os
import subprocess
import sys

import numpy as np
import pytest

from numpyro_pgm import cli
from numpyro_pgm.results import InferenceResult


def run(*arguments: str) -> int:
    # --no-cache: the persistent compilation cache is process-wide JAX state, so
    # these in-process runs leave it off; test_compilation_cache checks it apart.
    return cli.main(["--no-cache", *arguments])


def _saved(tmp_path, name, shift=0.0):
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4, 500))
    draws[0] += shift
    result = InferenceResult(
        method="nuts",
        groups={
            "posterior": {"theta": draws},
            "sample_stats": {"diverging": np.zeros((4, 500), bool)},
        },
        dims={},
    )
    return str(result.save(tmp_path / name))


def test_list_names_models_datasets_and_case_studies(capsys):
    assert run(*["list"]) == 0
    out = capsys.readouterr().out
    assert "Models" in out and "gmm" in out
    assert "breast_cancer" in out
    assert "Case studies" in out


def test_check_exit_status_follows_the_checks(tmp_path, capsys):
    assert run(*["check", _saved(tmp_path, "good.nc")]) == 0
    assert run(*["check", _saved(tmp_path, "bad.nc", shift=3.0)]) == 1
    assert "rhat" in capsys.readouterr().out


def test_bad_input_exits_2_with_a_message(tmp_path, capsys):
    junk = tmp_path / "junk.nc"
    junk.write_text("not a result")
    assert run(*["check", str(junk)]) == 2
    assert run(*["check", str(tmp_path / "missing.nc")]) == 2
    assert run(*["run", "no_such_study"]) == 2
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run(*["run", "no_such_study", "--out-dir", str(blocker / "x")]) == 2
    err = capsys.readouterr().err
    assert "not a saved numpyro_pgm result" in err
    assert "unknown case study 'no_such_study'" in err


def test_unwritable_out_dir_is_refused_before_anything_runs(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    studies = cli.case_studies()
    if not studies:
        pytest.skip("no case study installed yet")
    name = next(iter(studies))
    assert run(*["run", name, "--quick", "--out-dir", str(blocker / "out")]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err
    assert blocker.read_text() == ""


def test_compilation_cache_is_written_to_the_chosen_folder(tmp_path):
    script = (
        "import jax, numpyro, numpyro.distributions as dist\n"
        "from numpyro_pgm import cli, fit\n"
        "cli.enable_compilation_cache()\n"
        "def model(y=None):\n"
        "    mu = numpyro.sample('mu', dist.Normal(0, 1))\n"
        "    numpyro.sample('y', dist.Normal(mu, 1), obs=y)\n"
        "fit(jax.random.key(0), model, data={'y': 0.5}, method='nuts',\n"
        "    num_warmup=20, num_samples=20, num_chains=1, progress_bar=False,\n"
        "    checks=False)\n"
    )
    folder = tmp_path / "jax-cache"
    subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        env={**os.environ, "NUMPYRO_PGM_CACHE_DIR": str(folder)},
    )
    assert any(folder.iterdir())
