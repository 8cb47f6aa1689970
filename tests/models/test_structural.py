"""Tests for numpyro_pgm.models.structural: the structural components' builders."""

import importlib.util
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro_pgm.models import kalman, structural
from numpyro_pgm.models import state_space as ss

_SPEC = importlib.util.spec_from_file_location(
    "_ssm_dense", Path(__file__).with_name("_ssm_dense.py")
)
dense = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(dense)
x64, random_ssm = dense.x64, dense.random_ssm


def test_state_space_re_exports_the_same_objects():
    for name in structural.__all__:
        assert getattr(ss, name) is getattr(structural, name), name


def test_builders_without_noise_are_deterministic_structures():
    seasonal = structural.seasonal(4, 0.0, initial_variance=1.0)
    effects = ss.simulate(jax.random.key(12), seasonal, num_timesteps=9)["states"][:, 0]
    cycles = effects[3:] + effects[2:-1] + effects[1:-2] + effects[:-3]
    np.testing.assert_allclose(cycles, 0.0, atol=1e-5)  # float32 rounding of O(1)
    trend = structural.local_linear_trend(0.0, 0.0, initial_variance=1.0)
    states = ss.simulate(jax.random.key(13), trend, num_timesteps=6)["states"]
    line = states[0, 0] + states[0, 1] * jnp.arange(6.0)
    np.testing.assert_allclose(states[:, 0], line, atol=1e-5)
    both = structural.combine(trend, seasonal)
    draw = ss.simulate(jax.random.key(14), both, num_timesteps=6)
    np.testing.assert_allclose(
        draw["y"][:, 0], draw["states"][:, 0] + draw["states"][:, 2], atol=1e-5
    )


def test_trigonometric_harmonics_are_sinusoids_of_a_non_integer_period(x64):
    """Without noise, harmonic j is a cos(l_j t) + b sin(l_j t), l_j = 2 pi j / s."""
    period, num_harmonics = 365.25 / 7, 3
    component = structural.trigonometric_seasonal(period, num_harmonics, 0.0, 0.0)
    assert component.transition_matrix.shape == (6, 6)
    draw = ss.simulate(jax.random.key(20), component, num_timesteps=120)
    states = np.asarray(draw["states"])
    t = np.arange(120)
    expected = 0.0
    for j in range(num_harmonics):
        angle = 2 * math.pi * (j + 1) / period * t
        a, b = states[0, 2 * j], states[0, 2 * j + 1]
        harmonic = a * np.cos(angle) + b * np.sin(angle)
        np.testing.assert_allclose(states[:, 2 * j], harmonic, 1e-10, 1e-10)
        expected = expected + harmonic
    np.testing.assert_allclose(draw["y"][:, 0], expected, 1e-10, 1e-10)


def test_all_harmonics_give_a_zero_sum_periodic_pattern(x64):
    component = structural.trigonometric_seasonal(6, 3, 0.0, initial_variance=4.0)
    assert component.transition_matrix.shape == (5, 5)  # lambda = pi has one state
    y = ss.simulate(jax.random.key(21), component, num_timesteps=24)["y"][:, 0]
    np.testing.assert_allclose(y[6:], y[:-6], 1e-10, 1e-10)
    np.testing.assert_allclose(y.reshape(4, 6).sum(1), 0.0, atol=1e-10)


def test_full_trigonometric_seasonal_has_the_dummy_seasonals_diffuse_likelihood(x64):
    """Both span the zero-sum periodic sequences: same likelihood once diffuse.

    With a deterministic seasonal (zero variance), the first s observations (level
    plus s - 1 seasonal states) absorb the diffuse prior; afterwards the one-step
    predictive densities are those of the exact-diffuse limit, whatever the basis of
    the seasonal space, up to O(1 / initial_variance): with unit-scale data and
    v = 1e7 the terms agree to 1e2 / v.
    """
    s, v = 6, 1e7
    truth = structural.combine(
        structural.local_level(0.5, 1.0, initial_variance=1.0),
        structural.seasonal(s, 0.0, initial_variance=4.0),
    )
    y = ss.simulate(jax.random.key(22), truth, num_timesteps=40)["y"]
    terms = []
    for seasonal in (
        structural.seasonal(s, 0.0, initial_variance=v),
        structural.trigonometric_seasonal(s, s // 2, 0.0, initial_variance=v),
    ):
        level = structural.local_level(0.5, 1.0, initial_variance=v)
        structure = structural.combine(level, seasonal)
        terms.append(kalman.kalman_filter(structure, y).log_likelihood_terms[s:])
    np.testing.assert_allclose(terms[0], terms[1], atol=1e2 / v)


def test_trend_plus_trigonometric_seasonal_matches_statsmodels(x64):
    """Log-likelihood and smoothed states equal UnobservedComponents' (approx. diffuse).

    statsmodels starts from N(0, 1e6 I) and drops the first k_states terms; the
    same model and burn-in give the same numbers up to rounding.
    """
    statsmodels = pytest.importorskip("statsmodels.api")
    period, num_harmonics = 365.25 / 7, 3
    variances = {"level": 0.1, "slope": 0.01, "seasonal": 0.02, "observation": 0.5}
    structure = structural.combine(
        structural.local_linear_trend(
            variances["level"],
            variances["slope"],
            variances["observation"],
            initial_variance=1e6,
        ),
        structural.trigonometric_seasonal(
            period, num_harmonics, variances["seasonal"], initial_variance=1e6
        ),
    )
    y = np.array(ss.simulate(jax.random.key(23), structure, num_timesteps=150)["y"])
    y[[10, 40, 41]] = np.nan
    reference = statsmodels.tsa.UnobservedComponents(
        y[:, 0],
        level="lltrend",
        freq_seasonal=[{"period": period, "harmonics": num_harmonics}],
    )
    params = [variances[k] for k in ("observation", "level", "slope", "seasonal")]
    burn = reference.loglikelihood_burn
    terms = kalman.kalman_filter(structure, y).log_likelihood_terms
    np.testing.assert_allclose(terms[burn:].sum(), reference.loglike(params), 1e-9)
    smoothed = reference.smooth(params).smoothed_state.T
    ours = kalman.rts_smoother(structure, y).smoothed_means
    # Smoothed means pass through the 1e6 prior: rounding ~ 1e6 * eps relative.
    np.testing.assert_allclose(ours, smoothed, 1e-6, 1e-6)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: structural.local_level(-1.0, 1.0),
            r"level_variance must be a non-negative.*-1.0.*scale\*\*2",
        ),
        (
            lambda: structural.seasonal(4, 1.0, -2.0),
            r"observation_variance must be a non-negative.*-2.0",
        ),
        (
            lambda: structural.combine(
                structural.local_level(1.0), random_ssm(np.random.default_rng(0))
            ),
            r"same observation dimension.*\[1, 2\]",
        ),
        (lambda: structural.combine(), r"combine needs at least one component"),
        (lambda: structural.seasonal(1, 1.0), r"period must be an integer >= 2.*1"),
        (
            lambda: structural.trigonometric_seasonal(1.5, 1, 1.0),
            r"period must be a number >= 2.*1.5.*365.25 / 7",
        ),
        (
            lambda: structural.trigonometric_seasonal("52", 1, 1.0),
            r"period must be a number >= 2.*'52'",
        ),
        (
            lambda: structural.trigonometric_seasonal(52.18, 27, 1.0),
            r"num_harmonics must be an integer between 1 and floor\(period / 2\) = "
            r"26.*got 27",
        ),
        (
            lambda: structural.trigonometric_seasonal(12, 0, 1.0),
            r"num_harmonics must be an integer between 1 and .* = 6.*got 0",
        ),
        (
            lambda: structural.trigonometric_seasonal(12, 2, -0.1),
            r"seasonal_variance must be a non-negative.*-0.1",
        ),
    ],
)
def test_bad_input_raises_with_a_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call()
