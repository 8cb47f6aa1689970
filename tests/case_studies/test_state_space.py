"""Smoke tests of the two state-space case studies (Nile, Mauna Loa CO2), --quick."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2] / "case_studies"
PNG = b"\x89PNG\r\n\x1a\n"


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_figures(out_dir, names):
    for name in names:
        path = out_dir / name
        assert path.exists() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == PNG, name


def assert_diagnostics(out_dir, figures):
    """The project's standard report is in diagnostics/ and linked from summary.md."""
    report = (out_dir / "diagnostics" / "summary.md").read_text()
    link = "[diagnostics/summary.md](diagnostics/summary.md)"
    assert link in (out_dir / "summary.md").read_text()
    assert_figures(out_dir / "diagnostics", figures)
    return report


def test_nile_quick_run_reproduces_the_published_mle(tmp_path, capsys):
    nile = load("state_space_nile")
    metrics = nile.main(["--quick", "--out-dir", str(tmp_path)])
    assert str(tmp_path) in capsys.readouterr().out
    assert_figures(tmp_path, ("level.png", "forecast.png", "variances.png"))
    report = assert_diagnostics(tmp_path, ("nuts_trace.png", "nuts_rank.png"))
    assert "| level_scale |" in report and "| observation_scale |" in report
    assert not (tmp_path / "methods.png").exists()  # --quick: marginal NUTS only
    mle = metrics["mle"]
    assert mle["converged"]
    # Durbin & Koopman (2012), section 2.10.1, give 5 significant digits; the
    # optimiser's stopping rule moves the flat level variance by ~1e-3 relative.
    for name, published in nile.PUBLISHED.items():
        np.testing.assert_allclose(mle[name], published, rtol=1e-2)
    summary = (tmp_path / "summary.md").read_text()
    assert "| Durbin & Koopman (2012), sec. 2.10 | 1469.1 | 15099 |" in summary
    assert "Public domain" in summary and "Cobb" in summary
    assert "## 10-year forecast" in summary and "| 1980 |" in summary
    if metrics["statsmodels"] is not None:
        assert "| statsmodels UnobservedComponents |" in summary
        np.testing.assert_allclose(
            mle["log_likelihood"], metrics["statsmodels"]["log_likelihood"], 1e-4
        )
    # A 300-draw posterior: the MLE of the well-identified variance lies inside
    # its central 90% interval (the posterior sd is ~20% of the value).
    posterior = metrics["posterior"]["nuts"]["observation_variance"]
    assert posterior["q05"] < mle["observation_variance"] < posterior["q95"]


def test_co2_quick_run_handles_missing_weeks_in_the_filter(tmp_path):
    co2 = load("state_space_co2")
    metrics = co2.main(["--quick", "--out-dir", str(tmp_path)])
    names = ("decomposition.png", "missing.png", "forecast.png", "innovations.png")
    assert_figures(tmp_path, names)
    report = assert_diagnostics(tmp_path, ())
    assert "| slope_scale |" in report and "optimizer_converged" in report
    assert metrics["missing_terms_are_zero"]
    # 229 observed weeks: if the model fits, the standardised one-step errors have
    # sd 1 with standard error 1 / sqrt(2 n) = 0.047; 4 standard errors allowed.
    assert abs(metrics["innovation_sd"] - 1.0) < 4 / np.sqrt(2 * 229)
    assert metrics["forecast_median"].shape == (co2.HORIZON,)
    summary = (tmp_path / "summary.md").read_text()
    assert "(261 weeks, 32 missing)" in summary
    assert "exactly zero (yes)" in summary
    assert "Keeling" in summary and "| +104 |" in summary


def test_co2_years_must_select_data():
    co2 = load("state_space_co2")
    with pytest.raises(ValueError, match="first_year and last_year must select"):
        co2.load_data(2005)
    data = co2.load_data(1964, 1964)
    assert data["y"].size == 52 and data["missing"].sum() == 21
    first_year = data["y"][data["time"] < data["time"][0] + 1]
    assert abs(np.nanmean(first_year)) < 1e-9  # centred on its first year
