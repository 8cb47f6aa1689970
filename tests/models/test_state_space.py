"""Tests for numpyro_pgm.models.state_space against dense Gaussian algebra and D&K."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
import scipy.optimize
import scipy.stats
from numpyro.infer.util import log_density
from numpyro_pgm.models import state_space as ss

# Each Monte Carlo check is a family of K standardized comparisons; with a declared
# family failure rate ALPHA, Bonferroni gives the per-comparison z.
ALPHA = 1e-4


def bonferroni_z(num_comparisons):
    return scipy.stats.norm.isf(ALPHA / (2 * num_comparisons))


@pytest.fixture
def x64():
    """Run one test in float64, without flipping x64 for the whole session."""
    with jax.enable_x64(True):
        yield


def random_ssm(rng, m=2, d=2):
    """A small, generic model: stable F, full H, PD covariances."""

    def pd(k):
        a = rng.normal(size=(k, k))
        return a @ a.T / k + 0.5 * np.eye(k)

    F = rng.normal(size=(m, m))
    F = 0.9 * F / np.abs(np.linalg.eigvals(F)).max()
    arrays = (F, rng.normal(size=(d, m)), pd(m), pd(d), rng.normal(size=m), 3 * pd(m))
    return ss.LinearGaussianSSM(*(jnp.asarray(a) for a in arrays))


def dense_joint(ssm, num_timesteps):
    """Mean and covariance of (z_{1:T}, y_{1:T}), flattened, built block by block."""
    F, H, Q, R, m0, P0 = (np.asarray(a, dtype=np.float64) for a in ssm)
    m, T = F.shape[0], num_timesteps
    means, marginals = [m0], [P0]
    for _ in range(T - 1):
        means.append(F @ means[-1])
        marginals.append(F @ marginals[-1] @ F.T + Q)
    cov_z = np.zeros((T * m, T * m))
    for s in range(T):
        for t in range(s, T):
            block = np.linalg.matrix_power(F, t - s) @ marginals[s]
            cov_z[t * m : (t + 1) * m, s * m : (s + 1) * m] = block
            cov_z[s * m : (s + 1) * m, t * m : (t + 1) * m] = block.T
    H_all, R_all = np.kron(np.eye(T), H), np.kron(np.eye(T), R)
    mean_z = np.concatenate(means)
    return (
        mean_z,
        cov_z,
        H_all @ mean_z,
        H_all @ cov_z @ H_all.T + R_all,
        cov_z @ H_all.T,
    )


def dense_posterior(ssm, y):
    """p(z | observed y) by the seed-000 section-5 conditioning formula."""
    T = y.shape[0]
    mean_z, cov_z, mean_y, cov_y, cov_zy = dense_joint(ssm, T)
    seen = ~np.isnan(np.asarray(y).ravel())
    gain = np.linalg.solve(cov_y[np.ix_(seen, seen)], cov_zy[:, seen].T).T
    mean = mean_z + gain @ (np.asarray(y).ravel()[seen] - mean_y[seen])
    return mean, cov_z - gain @ cov_zy[:, seen].T


def dense_log_likelihood(ssm, y):
    _, _, mean_y, cov_y, _ = dense_joint(ssm, y.shape[0])
    seen = ~np.isnan(np.asarray(y).ravel())
    gaussian = scipy.stats.multivariate_normal(mean_y[seen], cov_y[np.ix_(seen, seen)])
    return gaussian.logpdf(np.asarray(y).ravel()[seen])


@pytest.fixture
def problem(x64):
    """A 2-state, 2-observation model, 7 steps, with a partly and a fully missing y."""
    ssm = random_ssm(np.random.default_rng(0))
    y = ss.simulate(jax.random.key(0), ssm, num_timesteps=7)["y"]
    return ssm, y.at[2, 0].set(jnp.nan).at[4].set(jnp.nan)


def blocks(dense, m):
    T = dense.shape[0] // m
    return np.stack([dense[t * m : (t + 1) * m, t * m : (t + 1) * m] for t in range(T)])


# Deterministic identities hold to rounding: float64 eps times a modest condition.
RTOL = 1e-9


@pytest.mark.parametrize("missing", [False, True])
def test_kalman_log_likelihood_equals_dense_gaussian(problem, missing):
    ssm, y = problem
    y = y if missing else ss.simulate(jax.random.key(1), ssm, num_timesteps=7)["y"]
    result = ss.kalman_filter(ssm, y)
    np.testing.assert_allclose(
        result.log_likelihood, dense_log_likelihood(ssm, y), RTOL
    )
    np.testing.assert_allclose(result.log_likelihood_terms.sum(), result.log_likelihood)
    if missing:
        assert result.log_likelihood_terms[4] == 0.0  # no update step when all missing
        np.testing.assert_allclose(result.filtered_means[4], result.predicted_means[4])


def test_parallel_filter_equals_sequential(problem):
    ssm, y = problem
    sequential, parallel = ss.kalman_filter(ssm, y), ss.parallel_kalman_filter(ssm, y)
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
    sequential, parallel = ss.kalman_filter(ssm, y), ss.parallel_kalman_filter(ssm, y)
    # The prior variance 1e7 conditions each composition (I + C J); rounding grows as
    # initial_variance * eps per step, accumulated over the T steps.
    rtol = 1e7 * np.finfo(np.float64).eps * 30
    np.testing.assert_allclose(parallel.log_likelihood, sequential.log_likelihood, rtol)
    np.testing.assert_allclose(
        parallel.filtered_means, sequential.filtered_means, 1e-6, 1e-5
    )


def test_rts_smoother_equals_dense_conditioning(problem):
    ssm, y = problem
    smoothed = ss.rts_smoother(ssm, y)
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
    result = ss.forecast(ssm, y, horizon)
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
    draws = jax.jit(jax.vmap(ss.ffbs, in_axes=(0, None, None)))(keys, ssm, y)
    mean, cov = dense_posterior(ssm, y)  # the joint path, not only marginals
    error, num_comparisons = max_standardized_error(
        np.asarray(draws).reshape(NUM_DRAWS, -1), mean, cov
    )
    assert error < bonferroni_z(num_comparisons)


def test_forward_only_sampling_fails_the_same_check(problem):
    """Test the test: sampling filtered marginals (no backward pass) is detected."""
    ssm, y = problem
    filtered = ss.kalman_filter(ssm, y)
    smoothed = ss.rts_smoother(ssm, y)
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
    paths = jax.vmap(ss.ffbs, in_axes=(0, 0, None))(keys, batch, y)
    assert paths.shape == (3, 6, 2)
    np.testing.assert_allclose(paths[1], ss.ffbs(keys[1], draws[1], y), 1e-12)


def test_nile_maximum_likelihood_reproduces_durbin_koopman(x64):
    statsmodels = pytest.importorskip("statsmodels.api")
    y = statsmodels.datasets.nile.load_pandas().data["volume"].to_numpy()

    @jax.jit
    @jax.value_and_grad
    def objective(log_variances):
        ssm = ss.local_level(*jnp.exp(log_variances))
        # Approximate diffuse start: drop t = 1 as exact-diffuse likelihood does.
        return -ss.kalman_filter(ssm, y).log_likelihood_terms[1:].sum()

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


def test_model_log_density_is_the_kalman_likelihood(problem):
    ssm, y = problem
    value, trace = log_density(ss.model, (), {"y": y, "ssm": ssm}, {})
    np.testing.assert_allclose(value, ss.kalman_filter(ssm, y).log_likelihood, 1e-12)
    assert trace["y"]["is_observed"] and trace["y"]["value"] is y
    assert trace["y"]["cond_indep_stack"][0].name == "time"


def test_latent_state_model_integrates_to_the_marginal(problem):
    """log p(y) = log p(z, y) - log p(z | y) at any z; z = A e + b non-centred."""
    ssm, y = problem
    mean, cov = dense_posterior(ssm, y)
    chol_0 = np.linalg.cholesky(ssm.initial_cov)
    chol_q = np.linalg.cholesky(ssm.transition_cov)
    log_det = np.log(np.diag(chol_0)).sum() + 6 * np.log(np.diag(chol_q)).sum()
    marginal = ss.kalman_filter(ssm, y).log_likelihood
    for seed in (7, 8):
        innovations = jax.random.normal(jax.random.key(seed), (7, 2))
        joint, trace = log_density(
            ss.latent_state_model,
            (),
            {"y": y, "ssm": ssm},
            {"innovations": innovations},
        )
        states = np.asarray(trace["states"]["value"]).ravel()
        posterior = scipy.stats.multivariate_normal(mean, cov).logpdf(states)
        np.testing.assert_allclose(joint - log_det - posterior, marginal, RTOL)


def test_generative_traces_have_consistent_sites():
    ssm = ss.combine(ss.local_linear_trend(1.0, 0.1, 2.0), ss.seasonal(4, 0.5))
    draw = ss.simulate(jax.random.key(9), ssm, num_timesteps=12)
    assert draw["y"].shape == (12, 1) and draw["states"].shape == (12, 5)
    for model, kwargs, shapes in [
        (ss.model, {"ssm": ssm}, {"y": (12,)}),
        (ss.latent_state_model, {"ssm": ssm}, {"y": (12,), "states": (12, 5)}),
        (ss.local_level_model, {}, {"y": (12,), "level_scale": ()}),
        (ss.stochastic_volatility_model, {}, {"y": (12,), "log_volatility": (12,)}),
    ]:
        seeded = numpyro.handlers.seed(model, jax.random.key(10))
        trace = numpyro.handlers.trace(seeded).get_trace(num_timesteps=12, **kwargs)
        for name, shape in shapes.items():
            assert trace[name]["value"].shape == shape, (model.__name__, name)
        observed = trace["y"]["value"]
        trace = numpyro.handlers.trace(seeded).get_trace(observed, **kwargs)
        assert trace["y"]["is_observed"]
    assert np.isfinite(trace["y"]["value"]).all()


@pytest.mark.parametrize(
    "model",
    [ss.local_level_model, ss.latent_state_model, ss.stochastic_volatility_model],
)
def test_gradients_are_finite_with_missing_observations(model):
    kwargs = {"ssm": ss.local_level_prior} if model is ss.latent_state_model else {}
    y = jnp.array([0.3, jnp.nan, -1.2, 0.8, jnp.nan])
    seeded = numpyro.handlers.seed(model, jax.random.key(11))
    trace = numpyro.handlers.trace(seeded).get_trace(y, **kwargs)
    params = {k: v["value"] for k, v in trace.items() if v["type"] == "sample"}
    params = {k: v for k, v in params.items() if k != "y"}

    def density(params):
        return log_density(model, (y,), kwargs, params)[0]

    value, grads = jax.value_and_grad(density)(params)
    assert np.isfinite(value)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


def test_builders_without_noise_are_deterministic_structures():
    seasonal = ss.seasonal(4, 0.0, initial_variance=1.0)
    effects = ss.simulate(jax.random.key(12), seasonal, num_timesteps=9)["states"][:, 0]
    cycles = effects[3:] + effects[2:-1] + effects[1:-2] + effects[:-3]
    np.testing.assert_allclose(cycles, 0.0, atol=1e-5)  # float32 rounding of O(1)
    trend = ss.local_linear_trend(0.0, 0.0, initial_variance=1.0)
    states = ss.simulate(jax.random.key(13), trend, num_timesteps=6)["states"]
    line = states[0, 0] + states[0, 1] * jnp.arange(6.0)
    np.testing.assert_allclose(states[:, 0], line, atol=1e-5)
    both = ss.combine(trend, seasonal)
    draw = ss.simulate(jax.random.key(14), both, num_timesteps=6)
    np.testing.assert_allclose(
        draw["y"][:, 0], draw["states"][:, 0] + draw["states"][:, 2], atol=1e-5
    )


@pytest.mark.slow
def test_nuts_on_marginal_and_latent_models_agree():
    """NUTS on the Kalman model and on the explicit-state model: same posterior."""
    from numpyro.diagnostics import effective_sample_size
    from numpyro.infer import MCMC, NUTS

    truth = ss.local_level(0.5, 1.0, initial_variance=10.0)
    y = ss.simulate(jax.random.key(15), truth, num_timesteps=50)["y"][:, 0]
    prior = {"level_prior_scale": 1.0, "initial_variance": 10.0}

    def latent(y):
        ss.latent_state_model(y, ssm=lambda: ss.local_level_prior(**prior))

    means, errors = [], []
    for seed, model in enumerate([ss.local_level_model, latent]):
        mcmc = MCMC(NUTS(model), num_warmup=1000, num_samples=2000, progress_bar=False)
        kwargs = prior if model is ss.local_level_model else {}
        mcmc.run(jax.random.key(16 + seed), y, **kwargs)
        draws = np.stack(
            [mcmc.get_samples()[k] for k in ("level_scale", "observation_scale")], -1
        )
        ess = effective_sample_size(draws[None])
        means.append(draws.mean(0))
        errors.append(draws.std(0) / np.sqrt(ess))
    gap = np.abs(means[0] - means[1]) / np.hypot(*errors)
    assert gap.max() < bonferroni_z(2), gap


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: ss.kalman_filter(ss.local_level(1.0, 1.0), jnp.zeros((2, 3, 1))),
            r"y must have shape \(num_timesteps, 1\).*\(2, 3, 1\)",
        ),
        (
            lambda: ss.kalman_filter(
                ss.local_level(1.0, 1.0), jnp.array([1.0, jnp.inf])
            ),
            r"infinite.*index \(1, 0\).*NaN",
        ),
        (
            lambda: ss.local_level(-1.0, 1.0),
            r"level_variance must be a non-negative.*-1.0.*scale\*\*2",
        ),
        (
            lambda: ss.seasonal(4, 1.0, -2.0),
            r"observation_variance must be a non-negative.*-2.0",
        ),
        (
            lambda: ss.kalman_filter(
                ss.local_level(1.0, 1.0)._replace(initial_mean=jnp.zeros(2)),
                jnp.zeros(3),
            ),
            r"initial_mean must have shape \(1,\).*got shape \(2,\)",
        ),
        (
            lambda: ss.combine(
                ss.local_level(1.0), random_ssm(np.random.default_rng(0))
            ),
            r"same observation dimension.*\[1, 2\]",
        ),
        (lambda: ss.seasonal(1, 1.0), r"period must be an integer >= 2.*1"),
        (lambda: ss.model(ssm=ss.local_level(1.0, 1.0)), r"num_timesteps is required"),
    ],
)
def test_bad_input_raises_with_a_fix(call, match):
    with pytest.raises(ValueError, match=match):
        call()
