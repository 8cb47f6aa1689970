"""Smoke test of the Gaussian mixture case study (cheap methods, no K selection)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "case_studies" / "gmm_old_faithful.py"


@pytest.fixture(scope="module")
def case_study():
    spec = importlib.util.spec_from_file_location("gmm_old_faithful", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_adjusted_rand_index_matches_known_values(case_study):
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert case_study.adjusted_rand_index(labels, labels) == pytest.approx(1.0)
    assert case_study.adjusted_rand_index(labels, 2 - labels) == pytest.approx(1.0)
    # Hubert and Arabie's formula by hand: one agreeing pair, 3 pairs within the
    # rows and the columns each, 15 pairs in all: expected index 3 * 3 / 15.
    clusters = np.array([0, 0, 1, 2, 1, 2])
    expected = (1 - 9 / 15) / (0.5 * (3 + 3) - 9 / 15)  # 1/6, as scikit-learn
    assert case_study.adjusted_rand_index(labels, clusters) == pytest.approx(expected)


def test_quick_run_on_the_penguins_writes_figures_and_summary(
    case_study, tmp_path, capsys
):
    metrics = case_study.main(
        ["--quick", "--data", "penguins", "--method", "em", "cavi",
         "--skip-selection", "--out-dir", str(tmp_path)]
    )  # fmt: skip
    assert str(tmp_path) in capsys.readouterr().out
    folder = tmp_path / "penguins"
    for name in ("clusters.png", "responsibilities.png", "methods.png",
                 "objectives.png"):  # fmt: skip
        path = folder / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    summary = (folder / "summary.md").read_text()
    assert "| em |" in summary and "| cavi |" in summary and "CC0" in summary
    for row in metrics["penguins"].values():
        # Three species, three components with full covariances: the clusters
        # follow the species closely (ARI 1 is perfect, 0 is chance).
        assert row["ari"] > 0.6
        assert row["mu"].shape == (3, 4)
