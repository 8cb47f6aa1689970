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


def test_relabelled_result_permutes_every_component_site_consistently(case_study):
    from numpyro_pgm.models import gmm_labels

    import numpyro_pgm as pgm

    # Draw 1 is draw 0 with its labels cycled: component k of draw 1 is component
    # cycle[k] of draw 0, so a point labelled p in draw 0 is labelled inverse[p].
    cycle, inverse = np.array([1, 2, 0]), np.array([2, 0, 1])
    mu0, pi0 = np.array([[-2.0], [0.0], [2.0]]), np.array([0.2, 0.3, 0.5])
    precision0 = np.array([[[1.0]], [[4.0]], [[9.0]]])
    z0 = np.array([0, 1, 2, 2, 0])
    posterior = {
        "mu": np.stack([mu0, mu0[cycle]])[None],
        "pi": np.stack([pi0, pi0[cycle]])[None],
        "obs_precision": np.stack([precision0, precision0[cycle]])[None],
        "z": np.stack([z0, inverse[z0]])[None],
    }
    result = pgm.InferenceResult(method="gibbs", groups={"posterior": posterior},
                                 dims={})  # fmt: skip
    relabelling = gmm_labels.relabel(posterior["mu"])
    values = {
        "result": result,
        "permutations": relabelling.permutations,
        "mu": relabelling.mu,
        "pi": gmm_labels.apply_permutations(
            posterior["pi"], relabelling.permutations
        ),  # fmt: skip
    }
    relabelled = case_study._relabelled_result(values).samples
    for site in ("mu", "pi", "obs_precision", "z"):
        np.testing.assert_array_equal(
            relabelled[site][0, 0], relabelled[site][0, 1], err_msg=site
        )
    # The relabelled means still go with their own weights, precisions and points.
    order = np.argsort(relabelled["mu"][0, 0, :, 0])
    np.testing.assert_array_equal(relabelled["pi"][0, 0][order], pi0)
    np.testing.assert_array_equal(relabelled["obs_precision"][0, 0][order], precision0)
    np.testing.assert_array_equal(np.argsort(order)[relabelled["z"][0, 0]], z0)
