"""Smoke test of the VAE digits case study with --quick settings."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "case_studies" / "vae_digits.py"
FIGURES = (
    "elbo_curves.png",
    "reconstructions.png",
    "prior_samples.png",
    "interpolation.png",
    "latent_map.png",
    "latent_manifold.png",
)


@pytest.fixture(scope="module")
def case_study():
    spec = importlib.util.spec_from_file_location("vae_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_figures_summary_and_resumes(case_study, tmp_path, capsys):
    metrics = case_study.main(["--quick", "--out-dir", str(tmp_path)])
    assert str(tmp_path) in capsys.readouterr().out
    for name in FIGURES:
        path = tmp_path / name
        assert path.exists() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (tmp_path / "summary.md").read_text()
    assert "| features | test ELBO | IW bound (K=100) | accuracy |" in summary
    assert "| VAE means, L=2 |" in summary and "| grey pixels (64) |" in summary
    assert "CC BY 4.0" in summary and "Alpaydin" in summary
    # The project's standard report of the run, linked from the summary.
    diagnostics = tmp_path / "diagnostics" / "latent_2"
    assert "(diagnostics/latent_2/summary.md)" in summary
    report = (diagnostics / "summary.md").read_text()
    assert "elbo_settled" in report and "pareto_khat" in report
    assert "| z[2, 1] |" in report  # codes of three test digits, L = 2
    for name in ("L_2_elbo.png", "L_2_pair.png"):
        assert (diagnostics / name).stat().st_size > 1000, name
    assert set(metrics) == {2}
    values = metrics[2]
    # 64 binary pixels: log p(x) <= 0 and, after a short run, far above the
    # 64 log(1/2) = -44.4 nats of a coin-flip model.
    assert -44.4 < values["test_elbo"][0] < 0.0
    # The importance-weighted bound is above the ELBO (z = 4 standard errors of
    # the difference would need paired draws; here a loose sanity check).
    assert values["iw_bound"][0] > values["test_elbo"][0] - 4 * values["test_elbo"][1]
    # Ten classes: chance is 0.1; two latent dimensions already separate several.
    assert 0.3 < values["accuracy"] <= 1.0
    # The checkpoint is there, and a second run resumes from it without training.
    assert (tmp_path / "checkpoints" / "latent_2.npz").exists()
    args = case_study._parser().parse_args(["--quick", "--out-dir", str(tmp_path)])
    again = case_study.fit(args)["runs"][2]["result"]
    assert again.resumed_from == again.num_epochs == 30
    assert np.isfinite(again.test_elbo).all()


def test_split_is_stratified_and_binary(case_study):
    data = case_study.load_data()
    assert len(data["y_train"]) + len(data["y_test"]) == 1797
    assert set(np.unique(data["x_train"])) == {0.0, 1.0}
    assert data["grey_train"].min() >= 0.0 and data["grey_train"].max() <= 1.0
    train_share = np.bincount(data["y_train"]) / len(data["y_train"])
    test_share = np.bincount(data["y_test"]) / len(data["y_test"])
    assert np.abs(train_share - test_share).max() < 0.01
