"""report writes figures and summary.md, or refuses cleanly and leaves nothing."""

import os
import tempfile

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_pgm as pgm
from numpyro_pgm import plots
from numpyro_pgm.report import report


def regression(x, y=None):
    w = numpyro.sample("w", dist.Normal(jnp.zeros(2), 5.0).to_event(1))
    with numpyro.plate("point", x.shape[0]):
        numpyro.sample("y", dist.Normal(w[0] + w[1] * x, 1.0), obs=y)


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(5)
    x = rng.normal(size=25)
    data = {"x": x, "y": 0.5 - x + rng.normal(size=25)}
    nuts = pgm.fit(
        jax.random.key(0),
        regression,
        data=data,
        method="nuts",
        num_warmup=100,
        num_samples=100,
        num_chains=2,
        progress_bar=False,
        checks=False,
        posterior_predictive=True,
    )
    laplace = pgm.fit(
        jax.random.key(1),
        regression,
        data=data,
        method="laplace",
        num_samples=200,
        optimizer="lbfgs",
        checks=False,
    )
    return nuts, laplace


@pytest.fixture(autouse=True)
def no_figures_left_open():
    yield
    assert plt.get_fignums() == []


def _boom(*args, **kwargs):
    raise RuntimeError("boom")


def test_report_writes_figures_and_summary(fits, tmp_path, monkeypatch):
    nuts, laplace = fits

    def no_pair(result, **options):
        raise ValueError("pair is switched off in this test")

    monkeypatch.setattr(plots, "pair", no_pair)
    out_dir = tmp_path / "new" / "report"
    path = report([nuts, laplace], out_dir, title="Regression by two methods")
    assert path == out_dir / "summary.md"
    drawn = {
        f"{label}_{plot}.png"
        for label, result in (("nuts", nuts), ("laplace", laplace))
        for plot in plots.applicable(result)
        if plot != "pair"
    } | {"methods.png"}
    assert set(os.listdir(out_dir)) == drawn | {"summary.md"}  # no temporary left
    for name in drawn:
        assert (out_dir / name).stat().st_size > 1000
    text = path.read_text()
    assert text.startswith("# Regression by two methods\n")
    for name in drawn:
        assert f"]({name})" in text
    assert "- pair: pair is switched off in this test" in text
    assert (
        "Convergence checks (nuts)" in text and "Convergence checks (laplace)" in text
    )
    comparison = text.split("## Comparison of methods")[1]
    rows = [line for line in comparison.splitlines() if line.startswith("| w[")]
    assert [row.split(" | ")[1] for row in rows] == ["nuts", "laplace"] * 2
    nuts_part, laplace_part = text.split("## laplace (laplace)")
    assert "| ess_bulk | ess_tail | r_hat |" in nuts_part  # MCMC diagnostics
    assert "| parameter | mean | sd | eti89_lb | eti89_ub |\n" in laplace_part


def test_one_result_without_figures(fits, tmp_path):
    nuts, _ = fits
    path = report(nuts, tmp_path, figures=False)
    assert os.listdir(tmp_path) == ["summary.md"]
    text = path.read_text()
    assert text.startswith("# Inference report\n")
    assert "## nuts (nuts)" in text and "Comparison" not in text and "![" not in text


def test_unwritable_folder_is_refused_and_nothing_is_left(fits, tmp_path, monkeypatch):
    nuts, _ = fits
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="out_dir=.* cannot be written to"):
        report(nuts, blocker / "report", figures=False)
    with pytest.raises(ValueError, match="is a file, not a folder"):
        report(nuts, blocker, figures=False)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # An existing folder without write permission (as root, chmod would not stop
    # us, so the refusal is simulated where the first file is created).
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(ValueError, match="Permission denied"):
        report(nuts, tmp_path / "deep" / "er", figures=False)
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only folders")
def test_read_only_folder_is_refused(fits, tmp_path):
    nuts, _ = fits
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(ValueError, match="cannot be written to"):
        report(nuts, locked / "report", figures=False)
    assert os.listdir(locked) == []


def test_a_failure_midway_leaves_nothing_behind(fits, tmp_path, monkeypatch):
    nuts, laplace = fits
    monkeypatch.setattr(plots, "trace", _boom)
    with pytest.raises(RuntimeError, match="boom"):
        report([nuts, laplace], tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()

    # A failure while moving the files into place takes back those already moved
    # and leaves what the folder held before.
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("kept")
    monkeypatch.setattr(plots, "applicable", lambda result: ("energy",))
    real_replace, calls = os.replace, []

    def flaky_replace(source, target):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="No space left"):
        report([nuts, laplace], existing)
    assert len(calls) == 2
    assert os.listdir(existing) == ["notes.txt"]
