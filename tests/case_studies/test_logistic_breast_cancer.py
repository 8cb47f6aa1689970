"""Smoke test of the logistic regression case study with --quick settings."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = (
    Path(__file__).resolve().parents[2] / "case_studies" / "logistic_breast_cancer.py"
)
FIGURES = ("reliability.png", "forest.png", "posterior_sd.png")
METHODS = ("nuts", "laplace", "svi-normal", "svi-mvn")


@pytest.fixture(scope="module")
def case_study():
    spec = importlib.util.spec_from_file_location("logistic_breast_cancer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_figures_and_summary(case_study, tmp_path, capsys):
    metrics = case_study.main(["--quick", "--out-dir", str(tmp_path)])
    assert str(tmp_path) in capsys.readouterr().out
    for name in FIGURES:
        path = tmp_path / name
        assert path.exists() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (tmp_path / "summary.md").read_text()
    assert "| method | accuracy | log loss |" in summary
    for method in METHODS:
        assert f"| {method} |" in summary
        assert f"### {method}" in summary
    assert "CC BY 4.0" in summary and "Wolberg" in summary
    assert set(metrics) == set(METHODS)
    for values in metrics.values():
        # 171 test masses; even a tiny run separates the classes well.
        assert 0.8 < values["accuracy"] <= 1.0
        assert 0.0 < values["log_loss"] < 0.5


def test_split_is_stratified_and_standardised_on_training_data(case_study):
    data = case_study.load_data()
    y_train, y_test = data["y_train"], data["y_test"]
    assert len(y_train) + len(y_test) == 569
    assert abs(len(y_test) - 0.3 * 569) <= 2
    assert abs(y_train.mean() - y_test.mean()) < 0.01
    assert abs(data["X_train"].mean(axis=0)).max() < 1e-10
    assert abs(data["X_train"].std(axis=0) - 1).max() < 1e-10


def test_method_flag_selects_methods(case_study, tmp_path):
    metrics = case_study.main(
        ["--quick", "--method", "laplace", "--out-dir", str(tmp_path)]
    )
    assert set(metrics) == {"laplace"}
    assert (tmp_path / "summary.md").exists()
    assert not (tmp_path / "posterior_sd.png").exists()
