"""Simulation-based calibration: a correct sampler passes, a too-narrow guide fails."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import numpyro_pgm as pgm

FAILURE_RATE = 0.001  # declared per test: the chance a correct method fails


def normal_mean(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("point", 10):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def too_narrow_guide(y=None):
    """Posterior sd is 1/sqrt(11) ~ 0.30; this guide's is 0.05."""
    loc = numpyro.param("loc", 0.0)
    numpyro.sample("mu", dist.Normal(loc, 0.05))


DATA = {"y": np.zeros(10)}


def test_nuts_on_a_conjugate_model_is_calibrated(tmp_path):
    result = pgm.sbc(
        jax.random.key(0),
        normal_mean,
        data=DATA,
        method="nuts",
        num_simulations=100,
        num_draws=49,
        num_warmup=200,
        num_samples=100,
        num_chains=2,
        progress_bar=False,
    )
    assert result.ranks.shape == (100, 1)
    assert result.parameter_names == ("mu",)
    assert result.ranks.min() >= 0 and result.ranks.max() <= 49
    assert result.passed(FAILURE_RATE), result.to_markdown()


def test_a_too_narrow_guide_fails_calibration():
    result = pgm.sbc(
        jax.random.key(1),
        normal_mean,
        data=DATA,
        method="svi",
        guide=too_narrow_guide,
        num_simulations=40,
        num_draws=49,
        num_steps=500,
        num_samples=200,
        progress_bar=False,
    )
    # Truths fall outside the narrow guide most of the time: ranks pile up at 0
    # and 49, and uniformity is rejected far below the failure rate.
    assert not result.passed(FAILURE_RATE), result.to_markdown()
    assert np.mean((result.ranks == 0) | (result.ranks == 49)) > 0.5


def test_sbc_resumes_from_its_checkpoint(tmp_path):
    checkpoint = tmp_path / "sbc.npz"
    options = dict(
        data=DATA,
        method="laplace",
        num_draws=19,
        num_samples=100,
        checkpoint=checkpoint,
        progress_bar=False,
    )
    first = pgm.sbc(jax.random.key(2), normal_mean, num_simulations=3, **options)
    resumed = pgm.sbc(jax.random.key(2), normal_mean, num_simulations=5, **options)
    fresh = pgm.sbc(
        jax.random.key(2),
        normal_mean,
        num_simulations=5,
        **{**options, "checkpoint": tmp_path / "other.npz"},
    )
    np.testing.assert_array_equal(resumed.ranks[:3], first.ranks)
    np.testing.assert_array_equal(resumed.ranks, fresh.ranks)


def test_sbc_bad_input():
    with pytest.raises(ValueError, match="num_simulations must be an int >= 2"):
        pgm.sbc(
            jax.random.key(0), normal_mean, data=DATA, method="nuts", num_simulations=1
        )
    with pytest.raises(ValueError, match=r"parameters \['sigma'\] are not latent"):
        pgm.sbc(
            jax.random.key(0),
            normal_mean,
            data=DATA,
            method="nuts",
            parameters=("sigma",),
        )
