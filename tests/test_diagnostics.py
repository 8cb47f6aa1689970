"""check(): each failure is detected, reported, and raised as a warning at fit time."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_pgm as pgm
from numpyro_pgm.results import InferenceResult


def _synthetic(chains: np.ndarray, method: str = "nuts", **stats) -> InferenceResult:
    return InferenceResult(
        method=method,
        groups={"posterior": {"theta": chains}, "sample_stats": stats},
        dims={},
        settings={"max_tree_depth": 10},
    )


def test_rhat_and_ess_flag_chains_that_disagree():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4, 500))
    draws[0] += 3.0  # one chain elsewhere: R-hat far above 1.01
    report = pgm.check(_synthetic(draws))
    failed = {f.name for f in report.failures}
    assert "rhat" in failed
    assert not report.passed
    healthy = pgm.check(_synthetic(rng.normal(size=(4, 500))))
    assert healthy.passed, str(healthy)


def test_divergences_tree_depth_and_ebfmi_are_read_from_sample_stats():
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(4, 500))
    diverging = np.zeros((4, 500), bool)
    diverging[2, 10] = True
    depth = np.full((4, 500), 3)
    depth[1, :5] = 10
    energy = np.cumsum(rng.normal(size=(4, 500)), axis=1)  # a random walk: E-BFMI ~ 0
    report = pgm.check(
        _synthetic(draws, diverging=diverging, tree_depth=depth, energy=energy)
    )
    values = {f.name: f.value for f in report}
    assert values["divergences"] == 1
    assert values["max_tree_depth"] == 5
    assert values["ebfmi"] < 0.3
    assert {f.name for f in report.failures} >= {
        "divergences",
        "max_tree_depth",
        "ebfmi",
    }
    assert "FAIL" in report.to_markdown()


SCHOOL_EFFECTS = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOL_SDS = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def centred_schools(y=None):
    """Eight schools, centred: the textbook funnel that makes NUTS diverge."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
    with numpyro.plate("school", 8):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(theta, SCHOOL_SDS), obs=y)


def test_a_funnel_raises_divergence_warnings_at_fit_time():
    with pytest.warns(pgm.ConvergenceWarning) as caught:
        result = pgm.fit(
            jax.random.key(0),
            centred_schools,
            data={"y": SCHOOL_EFFECTS},
            method="nuts",
            num_warmup=500,
            num_samples=500,
            num_chains=2,
            progress_bar=False,
        )
    assert any("divergent transitions" in str(w.message) for w in caught)
    assert result.sample_stats["diverging"].sum() > 0


def gaussian_mean(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 3.0))
    with numpyro.plate("point", 20):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def cauchy_location(y=None):
    """One Cauchy observation: a posterior with tails no Gaussian can cover."""
    mu = numpyro.sample("mu", dist.Normal(0.0, 100.0))
    numpyro.sample("y", dist.StudentT(1.0, mu, 1.0), obs=y)


def test_pareto_khat_separates_an_exact_from_a_poor_approximation():
    y = np.random.default_rng(2).normal(1.0, 1.0, 20)
    # Gaussian posterior: Laplace is exact, so the importance weights are constant.
    exact = pgm.fit(jax.random.key(1), gaussian_mean, data={"y": y}, method="laplace")
    khat = {f.name: f.value for f in pgm.check(exact)}["pareto_khat"]
    assert khat < 0.5
    # A Gaussian guide on a Cauchy-tailed posterior: p/q is unbounded in the tails.
    with pytest.warns(pgm.ConvergenceWarning, match="Pareto k-hat"):
        poor = pgm.fit(
            jax.random.key(1),
            cauchy_location,
            data={"y": 0.0},
            method="svi",
            num_steps=3000,
            num_samples=4000,
            progress_bar=False,
        )
    assert {f.name for f in pgm.check(poor).failures} == {"pareto_khat"}


def test_an_unsettled_elbo_is_reported():
    y = np.random.default_rng(3).normal(40.0, 1.0, 20)
    # Far from converged, the guide is also far from the posterior: k-hat fails
    # too, so both warnings are expected.
    with pytest.warns(pgm.ConvergenceWarning) as caught:
        result = pgm.fit(
            jax.random.key(2),
            gaussian_mean,
            data={"y": y},
            method="svi",
            learning_rate=1e-3,
            num_steps=400,
            chunk_size=100,
            progress_bar=False,
        )
    assert any("ELBO was still improving" in str(w.message) for w in caught)
    assert {f.name for f in pgm.check(result).failures} >= {"elbo_settled"}


def test_svi_stops_early_on_a_plateau():
    y = np.random.default_rng(4).normal(1.0, 1.0, 20)
    result = pgm.fit(
        jax.random.key(3),
        gaussian_mean,
        data={"y": y},
        method="svi",
        learning_rate=0.05,
        num_steps=20_000,
        chunk_size=200,
        progress_bar=False,
    )
    steps = int(result.sample_stats["num_steps"][0])
    assert steps < 20_000
    assert steps % 200 == 0
    assert result.sample_stats["elbo"].shape == (1, steps)


def test_check_rejects_other_objects():
    with pytest.raises(TypeError, match="InferenceResult"):
        pgm.check({"theta": np.zeros((2, 10))})
