"""Tests for numpyro_pgm.models.kalman against dense Gaussian algebra and D&K."""

import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from numpyro_pgm.models import kalman
from numpyro_pgm.models import state_space as ss

from numpyro_pgm import datasets

_SPEC = importlib.util.spec_from_file_location(
    "_ssm_dense", Path(__file__).with_name("_ssm_dense.py")
)
dense = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(dense)
x64, problem = dense.x64, dense.problem
bonferroni_z, random_ssm, RTOL = dense.bonferroni_z, dense.random_ssm, dense.RTOL
dense_joint, dense_posterior = dense.dense_joint, dense.dense_posterior
dense_log_likelihood, blocks = dense.dense_log_likelihood, dense.blocks


@pytest.mark.parametrize("missing", [False, True])
def test_kalman_log_likelihood_equals_dense_gaussian(problem, missing):
    ssm, y = problem
    y = y if missing else ss.simulate(jax.random.key(1), ssm, num_timesteps=7)["y"]
    result = kalman.kalman_filter(ssm, y)
    np.testing.assert_allclose(
        result.log_likelihood, dense_log_likelihood(ssm, y), RTOL
    )
    np.testing.assert_allclose(result.log_likelihood_terms.sum(), result.log_likelihood)
    if missing:
        assert result.log_likelihood_terms[4] == 0.0  # no update step when all missing
        np.testing.assert_allclose(result.filtered_means[4], result.predicted_means[4])


def test_univariate_path_equals_dense_conditioning(x64):
    """d = 1 takes the scalar update (no Cholesky): same likelihood and moments."""
    ssm = random_ssm(np.random.default_rng(1), m=3, d=1)
    y = ss.simulate(jax.random.key(19), ssm, num_timesteps=8)["y"]
    y = y.at[3].set(jnp.nan)
    result = kalman.kalman_filter(ssm, y)
    np.testing.assert_allclose(
        result.log_likelihood, dense_log_likelihood(ssm, y), RTOL
    )
    assert result.log_likelihood_terms[3] == 0.0
    mean, cov = dense_posterior(ssm, y)
    smoothed = kalman.rts_smoother(ssm, y)
    np.testing.assert_allclose(smoothed.smoothed_means.ravel(), mean, RTOL, 1e-12)
    np.testing.assert_allclose(smoothed.smoothed_covs, blocks(cov, 3), RTOL, 1e-12)
    parallel = kalman.parallel_kalman_filter(ssm, y)
    np.testing.assert_allclose(parallel.log_likelihood, result.log_likelihood, RTOL)


def test_parallel_filter_equals_sequential(problem):
    ssm, y = problem
    sequential, parallel = (
        kalman.kalman_filter(ssm, y),
        kalman.parallel_kalman_filter(ssm, y),
    )
    for name in sequential._fields:
        np.testing.assert_allclose(
            getattr(parallel, name),
            getattr(sequential, name),
            RTOL,
            1e-12,
            err_msg=name,
        )


def test_parallel_filter_with_diffuse_structural_model(x64):
    ssm = ss.combine(ss.local_linear_trend(1.0, 0.1, 2.0), ss.seasonal(4, 0.5))
    y = ss.simulate(jax.random.key(2), ssm, num_timesteps=30)["y"].at[5].set(jnp.nan)
    sequential, parallel = (
        kalman.kalman_filter(ssm, y),
        kalman.parallel_kalman_filter(ssm, y),
    )
    # The prior variance 1e7 conditions each composition (I + C J); rounding grows as
    # initial_variance * eps per step, accumulated over the T steps.
    rtol = 1e7 * np.finfo(np.float64).eps * 30
    np.testing.assert_allclose(parallel.log_likelihood, sequential.log_likelihood, rtol)
    np.testing.assert_allclose(
        parallel.filtered_means, sequential.filtered_means, 1e-6, 1e-5
    )


def test_rts_smoother_equals_dense_conditioning(problem):
    ssm, y = problem
    smoothed = kalman.rts_smoother(ssm, y)
    mean, cov = dense_posterior(ssm, y)
    np.testing.assert_allclose(smoothed.smoothed_means.ravel(), mean, RTOL, 1e-12)
    np.testing.assert_allclose(smoothed.smoothed_covs, blocks(cov, 2), RTOL, 1e-12)


def test_forecast_equals_dense_conditioning(problem):
    ssm, y = problem
    horizon = 3
    padded = jnp.concatenate([y, jnp.full((horizon, 2), jnp.nan)])
    _, _, mean_y, cov_y, _ = dense_joint(ssm, padded.shape[0])
    seen = ~np.isnan(np.asarray(padded).ravel())
    future = np.arange(y.size, padded.size)
    gain = np.linalg.solve(cov_y[np.ix_(seen, seen)], cov_y[np.ix_(seen, future)]).T
    mean = mean_y[future] + gain @ (np.asarray(padded).ravel()[seen] - mean_y[seen])
    cov = cov_y[np.ix_(future, future)] - gain @ cov_y[np.ix_(seen, future)]
    result = kalman.forecast(ssm, y, horizon)
    np.testing.assert_allclose(result.observation_means.ravel(), mean, RTOL)
    np.testing.assert_allclose(result.observation_covs, blocks(cov, 2), RTOL)


def max_standardized_error(draws, mean, cov):
    """Largest |sample moment - truth| / standard error over means and covariances."""
    n = draws.shape[0]
    sd = np.sqrt(np.diag(cov))
    mean_error = np.abs(draws.mean(0) - mean) / (sd / np.sqrt(n))
    sample_cov = np.cov(draws, rowvar=False)
    # Var of a Gaussian sample covariance: (s_ii s_jj + s_ij^2) / n.
    cov_se = np.sqrt((np.outer(sd**2, sd**2) + cov**2) / n)
    upper = np.triu_indices_from(cov)
    cov_error = np.abs(sample_cov - cov)[upper] / cov_se[upper]
    return max(mean_error.max(), cov_error.max()), mean.size + upper[0].size


NUM_DRAWS = 4000


def test_ffbs_draws_have_the_smoothing_distribution(problem):
    ssm, y = problem
    keys = jax.random.split(jax.random.key(3), NUM_DRAWS)
    draws = jax.jit(jax.vmap(kalman.ffbs, in_axes=(0, None, None)))(keys, ssm, y)
    mean, cov = dense_posterior(ssm, y)  # the joint path, not only marginals
    error, num_comparisons = max_standardized_error(
        np.asarray(draws).reshape(NUM_DRAWS, -1), mean, cov
    )
    assert error < bonferroni_z(num_comparisons)


def test_forward_only_sampling_fails_the_same_check(problem):
    """Test the test: sampling filtered marginals (no backward pass) is detected."""
    ssm, y = problem
    filtered = kalman.kalman_filter(ssm, y)
    smoothed = kalman.rts_smoother(ssm, y)
    se = np.sqrt(np.diagonal(smoothed.smoothed_covs, axis1=1, axis2=2) / NUM_DRAWS)
    gap = np.abs(filtered.filtered_means - smoothed.smoothed_means) / se
    noise = jax.random.normal(jax.random.key(4), (NUM_DRAWS, 7, 2))
    roots = np.linalg.cholesky(filtered.filtered_covs)
    draws = np.asarray(filtered.filtered_means)[None] + np.einsum(
        "tij,ntj->nti", roots, noise
    )
    mean, cov = dense_posterior(ssm, y)
    error, num_comparisons = max_standardized_error(
        draws.reshape(NUM_DRAWS, -1), mean, cov
    )
    z = bonferroni_z(num_comparisons)
    assert gap.max() > 2 * z and error > 2 * z


def test_ffbs_vmaps_over_parameter_draws(x64):
    rng = np.random.default_rng(5)
    draws = [random_ssm(rng, m=2, d=1) for _ in range(3)]
    batch = jax.tree.map(lambda *a: jnp.stack(a), *draws)
    y = ss.simulate(jax.random.key(5), draws[0], num_timesteps=6)["y"]
    keys = jax.random.split(jax.random.key(6), 3)
    paths = jax.vmap(kalman.ffbs, in_axes=(0, 0, None))(keys, batch, y)
    assert paths.shape == (3, 6, 2)
    np.testing.assert_allclose(paths[1], kalman.ffbs(keys[1], draws[1], y), 1e-12)


def test_nile_maximum_likelihood_reproduces_durbin_koopman(x64):
    statsmodels = pytest.importorskip("statsmodels.api")
    y = datasets.load("nile").y

    @jax.jit
    @jax.value_and_grad
    def objective(log_variances):
        ssm = ss.local_level(*jnp.exp(log_variances))
        # Approximate diffuse start: drop t = 1 as exact-diffuse likelihood does.
        return -kalman.kalman_filter(ssm, y).log_likelihood_terms[1:].sum()

    start = np.log([np.var(y) / 2, np.var(y) / 2])
    fit = scipy.optimize.minimize(objective, start, jac=True, method="L-BFGS-B")
    level_variance, observation_variance = np.exp(fit.x)
    # D&K (2012), section 2.10.1: 1469.1 and 15099 (5 significant digits).
    np.testing.assert_allclose(
        [level_variance, observation_variance], [1469.1, 15099], 1e-2
    )
    reference = statsmodels.tsa.UnobservedComponents(y, level="llevel").fit(disp=False)
    np.testing.assert_allclose(
        [observation_variance, level_variance], reference.params, 1e-2
    )
    np.testing.assert_allclose(-fit.fun, reference.llf, 1e-4)


def test_missing_steps_contribute_exactly_zero_in_float32():
    # Both filters compute the terms with the same update step; the sequential
    # one is checked (the parallel one needs a proper prior in float32).
    structure = ss.combine(ss.local_linear_trend(0.1, 0.01, 0.5), ss.seasonal(4, 0.2))
    y = ss.simulate(jax.random.key(18), structure, num_timesteps=12)["y"]
    y = y.at[jnp.array([3, 4, 9])].set(jnp.nan)
    terms = kalman.kalman_filter(structure, y).log_likelihood_terms
    assert terms.dtype == jnp.float32
    assert np.all(terms[jnp.array([3, 4, 9])] == 0.0)
    assert np.all(terms[jnp.array([0, 1, 2, 5])] != 0.0)


def test_state_space_re_exports_the_same_objects():
    for name in kalman.__all__:
        assert getattr(ss, name) is getattr(kalman, name), name


def _with(name, value):
    """A valid 2-state, 2-observation model with one field replaced."""
    ssm = random_ssm(np.random.default_rng(0))
    return ssm._replace(**{name: jnp.asarray(value)})


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: kalman.kalman_filter(
                ss.local_level(1.0, 1.0), jnp.zeros((2, 3, 1))
            ),
            r"y must have shape \(num_timesteps, 1\).*\(2, 3, 1\)",
        ),
        (
            lambda: kalman.rts_smoother(
                random_ssm(np.random.default_rng(0)), jnp.ones((5, 3))
            ),
            r"y must have shape \(num_timesteps, 2\).*\(5, 3\).*2 observation",
        ),
        (
            lambda: kalman.kalman_filter(
                ss.local_level(1.0, 1.0), jnp.array([1.0, jnp.inf])
            ),
            r"infinite.*index \(1, 0\).*NaN",
        ),
        (
            lambda: kalman.kalman_filter(
                ss.local_level(1.0, 1.0), jnp.full(4, jnp.nan)
            ),
            r"y has no observed value: all 4 entries are NaN",
        ),
        (
            lambda: kalman.forecast(ss.local_level(1.0, 1.0), jnp.zeros(0), 3),
            r"y must have at least one time step",
        ),
        (
            lambda: kalman.ffbs(
                jax.random.key(0),
                ss.local_level(1.0, 1.0)._replace(initial_mean=jnp.zeros(2)),
                jnp.zeros(3),
            ),
            r"initial_mean must have shape \(1,\).*got shape \(2,\)",
        ),
        (
            lambda: kalman.kalman_filter(
                _with("transition_matrix", np.eye(2, 3)), jnp.zeros((3, 2))
            ),
            r"transition_matrix must have shape \(3, 3\).*got shape \(2, 3\)",
        ),
        (
            lambda: kalman.kalman_filter(
                _with("observation_matrix", np.ones((3, 2))), jnp.zeros((3, 3))
            ),
            r"observation_cov must have shape \(3, 3\).*got shape \(2, 2\)",
        ),
        (
            lambda: kalman.kalman_filter(
                _with("transition_cov", [[1.0, 2.0], [2.0, 1.0]]), jnp.zeros((3, 2))
            ),
            r"transition_cov must be a symmetric positive semi-definite.*negative "
            r"eigenvalue \(-1\)",
        ),
        (
            lambda: kalman.kalman_filter(
                _with("observation_cov", [[1.0, 0.0], [0.0, -0.5]]), jnp.zeros((3, 2))
            ),
            r"observation_cov must be a symmetric positive semi-definite.*negative "
            r"eigenvalue \(-0.5\).*L @ L.T",
        ),
        (
            lambda: kalman.parallel_kalman_filter(
                _with("observation_cov", [[1.0, 0.5], [0.0, 1.0]]), jnp.zeros((3, 2))
            ),
            r"observation_cov must be a symmetric.*asymmetric",
        ),
        (
            lambda: kalman.rts_smoother(
                _with("initial_cov", [[1.0, 0.0], [0.0, jnp.nan]]), jnp.zeros((3, 2))
            ),
            r"initial_cov must be a symmetric.*non-finite",
        ),
        (
            lambda: kalman.forecast(ss.local_level(1.0, 1.0), jnp.zeros(3), 0),
            r"horizon must be a positive integer.*0",
        ),
    ],
)
def test_bad_input_raises_with_a_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call()
